-- description: ADSL, subject-level analysis dataset: one row per subject screened (eligibility, demographics or randomisation form) or randomised; a screen failure has ITTFL = SAFFL = 'N' and no TRT01P. Treatment variables are masked in blinded builds.
-- materialized: table
-- grain: USUBJID
-- tags: marts, adam
-- columns:
--   studyid: Study identifier
--   usubjid: Unique subject identifier (study-site-number)
--   subjid: Subject identifier within the study (eCRF record id)
--   siteid: Study site identifier
--   age: Age (years)
--   ageu: Age units (YEARS)
--   sex: Sex (M, F)
--   race: Race: not collected in this study (no race item on the eCRF), always null
--   ethnic: Ethnicity: not collected in this study (no ethnicity item on the eCRF), always null
--   weightbl: Baseline (dosing) weight (kg)
--   heightbl: Baseline height (cm)
--   saps2bl: SAPS II at inclusion
--   infsrc: Source of infection
--   randdtm: Date-time of randomisation (H0)
--   randdt: Date of randomisation
--   kitno: Study-drug kit number
--   arm: Description of planned arm (the randomised arm; masked as the blinded label in blinded builds; null if not randomised)
--   armcd: Planned arm code (the arm's key in the study configuration's treatment arms; masked as the blinded label in blinded builds; null if not randomised)
--   actarm: Description of actual arm (the randomised arm once dosed; masked as the blinded label in blinded builds; null if never dosed)
--   actarmcd: Actual arm code (ARMCD once dosed; masked as the blinded label in blinded builds; null if never dosed)
--   armnrs: Reason arm is null (SCREEN FAILURE; ASSIGNED, NOT TREATED for ACTARM)
--   trt01p: Planned treatment for period 01 (masked as 'Blinded' in blinded builds; null if not randomised)
--   trt01pn: Planned treatment for period 01 (N): the arm's order in the study configuration; null in blinded builds
--   trt01a: Actual treatment for period 01 (masked as 'Blinded' in blinded builds; null if never dosed)
--   trt01an: Actual treatment for period 01 (N): as TRT01PN once dosed; null in blinded builds
--   trtsdtm: Date-time of first study-drug exposure
--   trtedtm: Date-time of last study-drug exposure
--   trtsdt: Date of first exposure to treatment (date part of TRTSDTM)
--   trtedt: Date of last exposure to treatment (date part of TRTEDTM)
--   ittfl: Intent-to-treat population flag (randomised)
--   saffl: Safety population flag (received study drug)
--   dthfl: Subject death flag (Y, or null): the study's one rule (int_death): vital status dead, or a death date entered
--   dthdtm: Date-time of death used in analysis; a partial or missing one (randomised subjects) is imputed as the later of the earliest instant the entry allows and the last known alive, within what the entry allows (DTHDTF, DTHTMF)
--   dthdt: Date of death (date part of DTHDTM)
--   dthdtf: Date of death imputation flag (D day, M month and day, Y whole date imputed from the last known alive; null when entered in full)
--   dthtmf: Time of death imputation flag (H when the time was imputed)
--   dthhrs: Time from H0 to death (hours; from the imputed DTHDTM when DTHDTF or DTHTMF is set)
--   lstalvdt: Date last known alive
--   sofabl: Baseline SOFA total as entered (H0)
--   lactbl: Baseline lactate (mmol/L, H0)
--   nebl: Baseline norepinephrine dose as base (µg/kg/min, rate in effect at H0)
with build as (
    select study_id, blinded, blinded_label from src.build_info
),

screened as (
    select subject_id, site_id from stg_eligibility
    union
    select subject_id, site_id from stg_demographics
    union
    select subject_id, site_id from stg_randomisation
),

subjects as (
    select
        subject_id,
        max(site_id) as site_id
    from screened
    group by subject_id
),

arms as (
    select kit_no, arm, arm_label, arm_n from src.randomisation_list
),

dosing as (
    select
        subject_id,
        min(exstdtm) as trtsdtm,
        max(coalesce(exendtm, exstdtm)) as trtedtm
    from stg_study_drug
    group by subject_id
),

planned_arm as (
    -- the arm as randomised: its label, its key in study.toml [treatment] arms (ARMCD) and its order there
    -- (TRTxxPN); masked as the blinded label (the number null) in a blinded build
    select
        rand.subject_id,
        case when build.blinded then build.blinded_label else arms.arm_label end as label,
        case when build.blinded then build.blinded_label else arms.arm end as code,
        case when not build.blinded then arms.arm_n end as arm_n
    from stg_randomisation as rand
    cross join build
    left join arms on arms.kit_no = rand.kit_no
),

treatment as (
    -- planned for every randomised subject, actual once dosed (null for a subject never dosed)
    select
        planned_arm.subject_id,
        planned_arm.label as planned_label,
        planned_arm.code as planned_code,
        planned_arm.arm_n as planned_n,
        case when dosing.trtsdtm is not null then planned_arm.label end as actual_label,
        case when dosing.trtsdtm is not null then planned_arm.code end as actual_code,
        case when dosing.trtsdtm is not null then planned_arm.arm_n end as actual_n
    from planned_arm
    left join dosing on dosing.subject_id = planned_arm.subject_id
),

baseline_lab as (
    select subject_id, lactate as lactbl from stg_labs where visit = 'H0'
),

baseline_sofa as (
    select subject_id, sofa_total as sofabl from stg_sofa where visit = 'H0'
),

baseline_ne as (
    -- the NE rate running at H0 (int_ne_running's rule)
    select h0.subject_id, ne.rate as nebl
    from (select distinct subject_id, 0.0 as at_hrs from int_ne_running) as h0
    asof join int_ne_running as ne on ne.subject_id = h0.subject_id and h0.at_hrs >= ne.from_hrs
),

final as (
    select
        -- identifiers
        build.study_id as STUDYID,
        build.study_id || '-' || subjects.subject_id as USUBJID,
        subjects.subject_id as SUBJID,
        regexp_replace(subjects.site_id, '^site_', '') as SITEID,
        -- demographics
        dm.age as AGE,
        case when dm.age is not null then 'YEARS' end as AGEU,
        dm.sex as SEX,
        cast(null as varchar) as RACE,
        cast(null as varchar) as ETHNIC,
        dm.weight_kg as WEIGHTBL,
        dm.height_cm as HEIGHTBL,
        dm.saps2 as SAPS2BL,
        dm.infection_source as INFSRC,
        -- randomisation and treatment
        rand.randdtm as RANDDTM,
        cast(rand.randdtm as date) as RANDDT,
        rand.kit_no as KITNO,
        -- the arm: one treatment period, so ARM = TRT01P and ACTARM = TRT01A (treatment, above)
        treatment.planned_label as ARM,
        treatment.planned_code as ARMCD,
        treatment.actual_label as ACTARM,
        treatment.actual_code as ACTARMCD,
        case
            when rand.subject_id is null then 'SCREEN FAILURE'
            when dosing.trtsdtm is null then 'ASSIGNED, NOT TREATED'
        end as ARMNRS,
        treatment.planned_label as TRT01P,
        treatment.planned_n as TRT01PN,
        treatment.actual_label as TRT01A,
        treatment.actual_n as TRT01AN,
        dosing.trtsdtm as TRTSDTM,
        dosing.trtedtm as TRTEDTM,
        cast(dosing.trtsdtm as date) as TRTSDT,
        cast(dosing.trtedtm as date) as TRTEDT,
        -- populations
        case when rand.subject_id is not null then 'Y' else 'N' end as ITTFL,
        case when dosing.trtsdtm is not null then 'Y' else 'N' end as SAFFL,
        -- death and follow-up
        case when death.dthfl then 'Y' end as DTHFL,
        coalesce(times.death_dtm, death.dthdtm) as DTHDTM,
        cast(coalesce(times.death_dtm, death.dthdtm) as date) as DTHDT,
        times.death_dtf as DTHDTF,
        times.death_tmf as DTHTMF,
        coalesce(times.death_hrs, death.dthdtm_hrs) as DTHHRS,
        case
            when death.dthfl then cast(coalesce(times.death_dtm, death.dthdtm) as date)
            else eos.last_contact_dt
        end as LSTALVDT,
        -- baseline characteristics
        baseline_sofa.sofabl as SOFABL,
        baseline_lab.lactbl as LACTBL,
        baseline_ne.nebl as NEBL
    from subjects
    cross join build
    left join stg_demographics as dm on dm.subject_id = subjects.subject_id
    left join stg_randomisation as rand on rand.subject_id = subjects.subject_id
    left join treatment on treatment.subject_id = subjects.subject_id
    left join dosing on dosing.subject_id = subjects.subject_id
    left join stg_end_of_study as eos on eos.subject_id = subjects.subject_id
    left join int_death as death on death.subject_id = subjects.subject_id
    left join int_subject_times as times on times.subject_id = subjects.subject_id
    left join baseline_lab on baseline_lab.subject_id = subjects.subject_id
    left join baseline_sofa on baseline_sofa.subject_id = subjects.subject_id
    left join baseline_ne on baseline_ne.subject_id = subjects.subject_id
)

select * from final
order by USUBJID

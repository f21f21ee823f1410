-- description: ADEFF, efficacy endpoints in BDS (long) form: one row per subject, parameter and time point. PE response (PERESP, primary at H6), MAP/NE ratio, NE peak and cumulative dose, lactate and its clearance, SOFA derived and as entered, fluid balance, VFD28, bradycardia.
-- materialized: table
-- grain: USUBJID, PARAMCD, AVISIT
-- tags: marts, adam
-- columns:
--   studyid: Study identifier
--   usubjid: Unique subject identifier
--   siteid: Study site identifier
--   trt01p: Planned treatment (masked in blinded builds)
--   trt01a: Actual treatment (masked in blinded builds)
--   trtp: Planned treatment of the record (one period: TRT01P, masked alike in blinded builds)
--   trta: Actual treatment of the record (one period: TRT01A, masked alike in blinded builds)
--   ittfl: Intent-to-treat population flag
--   saffl: Safety population flag
--   paramcd: Parameter code
--   param: Parameter description, with unit
--   avisit: Analysis visit (H0, H6, H12, H24, D2 ... D7, D28, a window from H0 such as H0-H24, or ON-TREATMENT)
--   avisitn: Analysis visit (N): one number per AVISIT, the planned hours from H0 (Hn: n, Dn: 24 x n), 1000 + n for a window H0-Hn, 2000 for ON-TREATMENT
--   atpt: Analysis time point within the day (H0, H6, H12, H24) of the time-point parameters PERESP, MAPNE, LACT and LACTCLR; null for daily values (D2 ... D7), windows and other parameters
--   atptn: Analysis time point (hours from H0), where ATPT is set
--   areltm: Analysis relative time: hours from H0 of the assessment (PERESP: the challenge; LACT, LACTCLR: the sample; SOFA: the lab sample, else nominal); null where only the visit is known
--   areltmu: Analysis relative time unit (HOURS)
--   adtm: Analysis date-time (H0 + ARELTM)
--   adt: Analysis date (date part of ADTM)
--   atm: Analysis time (time part of ADTM)
--   ady: Analysis relative day (ADT - TRTSDT, + 1 on or after TRTSDT: no day 0)
--   aval: Analysis value
--   avalc: Analysis value (character), for flags
--   ablfl: Baseline record flag (the H0 value)
--   base: Baseline value (the subject's H0 value of the parameter)
--   chg: Change from baseline (AVAL - BASE), post-baseline records only
--   missrsn: Reason AVAL is missing
with subjects as (
    select STUDYID, USUBJID, SUBJID, SITEID, TRT01P, TRT01A, ITTFL, SAFFL, RANDDTM, TRTSDT from adsl
    where ITTFL = 'Y'
),

pe_response as (
    select subject_id, 'PERESP' as paramcd, 'PE response: MAP at max PE dose / MAP before (ratio)' as param,
        atpt as avisit, pedtm_hrs as areltm, pe_response as aval, null as avalc,
        missing_reason as missrsn, true as has_baseline
    from int_pe_response
),

map_ne as (
    select subject_id, 'MAPNE' as paramcd, 'MAP / NE dose ratio (mmHg per µg/kg/min)' as param,
        'H' || hour as avisit, cast(null as double) as areltm, map_ne_ratio as aval, null as avalc,
        case when map_ne_ratio is null and ne_base = 0 then 'NE STOPPED' end as missrsn, true as has_baseline
    from int_hemo_hourly, src.study_parameters as p
    where list_contains(p.map_ne_hours, hour)
),

ne_exposure as (
    select subject_id, 'NEPEAK' as paramcd, 'Peak NE dose as base (µg/kg/min)' as param,
        'H0-H' || cast(window_hrs as integer) as avisit, cast(null as double) as areltm, peak_ne as aval,
        null as avalc,
        null as missrsn, false as has_baseline
    from int_ne_exposure
    union all
    select subject_id, 'NECUM', 'Cumulative NE dose as base (µg/kg)',
        'H0-H' || cast(window_hrs as integer), null, cum_ne, null, null, false
    from int_ne_exposure
),

lactate as (
    select subject_id, 'LACT' as paramcd, 'Lactate (mmol/L)' as param, visit as avisit,
        sample_hrs as areltm, lactate as aval, null as avalc, null as missrsn, true as has_baseline
    from int_lactate
    union all
    select subject_id, 'LACTCLR', 'Lactate clearance from H0 (%)', visit, sample_hrs, clearance_pct, null, null,
        false
    from int_lactate
    where visit in ('H6', 'H12', 'H24')
),

sofa as (
    select subject_id, 'SOFA' as paramcd, 'SOFA total, derived from inputs' as param, visit as avisit,
        at_hrs as areltm, cast(sofa_total_d as double) as aval, null as avalc, null as missrsn, true as has_baseline
    from int_sofa_derived
    union all
    select subject_id, 'SOFASITE', 'SOFA total as entered by the site', visit, at_hrs,
        cast(sofa_total_site as double), null, null, true
    from int_sofa_derived
),

fluids as (
    select subject_id, 'FLBAL' as paramcd, 'Daily fluid balance, in - out (mL)' as param, visit as avisit,
        cast(null as double) as areltm, balance_ml as aval, null as avalc, null as missrsn, false as has_baseline
    from int_fluid_balance
    union all
    select subject_id, 'FLBALCUM', 'Cumulative fluid balance from H0 (mL)', visit, null, cumulative_ml,
        null, null, false
    from int_fluid_balance
),

vfd as (
    select subject_id, 'VFD28' as paramcd, 'Ventilator-free days at day 28 (days)' as param, 'D28' as avisit,
        cast(null as double) as areltm, vfd28 as aval, null as avalc, null as missrsn, false as has_baseline
    from int_vfd
),

bradycardia as (
    select subject_id, 'BRADY' as paramcd, 'Bradycardia episode (HR below threshold)' as param, period as avisit,
        cast(null as double) as areltm,
        case when brady then 1.0 when not brady then 0.0 end as aval,
        case when brady then 'Y' when not brady then 'N' end as avalc,
        case when brady is null then 'NO HR READING' end as missrsn, false as has_baseline
    from int_bradycardia
),

parameters as (
    select * from pe_response
    union all select * from map_ne
    union all select * from ne_exposure
    union all select * from lactate
    union all select * from sofa
    union all select * from fluids
    union all select * from vfd
    union all select * from bradycardia
),

visits as (
    -- AVISITN, one number per AVISIT, read from the visit's name: Hn -> n, Dn -> 24 x n (planned hours from H0),
    -- a window H0-Hn -> 1000 + n, ON-TREATMENT -> 2000
    select
        parameters.*,
        case
            when regexp_full_match(avisit, 'H\d+') then cast(substr(avisit, 2) as double)
            when regexp_full_match(avisit, 'D\d+') then 24.0 * cast(substr(avisit, 2) as integer)
            when regexp_full_match(avisit, 'H0-H\d+') then 1000.0 + cast(substr(avisit, 5) as integer)
            when avisit = 'ON-TREATMENT' then 2000.0
        end as avisitn
    from parameters
),

with_baseline as (
    select
        visits.*,
        case when has_baseline and avisit = 'H0' then 'Y' end as ablfl,
        case when has_baseline then max(case when avisit = 'H0' then aval end)
            over (partition by subject_id, paramcd) end as base
    from visits
),

dated as (
    -- the analysis date-time where the assessment's time is known: H0 + ARELTM (to the second)
    select
        with_baseline.*,
        subjects.RANDDTM + to_microseconds(cast(round(areltm * 3600) * 1000000 as bigint)) as adtm
    from with_baseline
    join subjects on subjects.SUBJID = with_baseline.subject_id
),

final as (
    select
        -- identifiers and planned treatment, as ADSL has them
        subjects.STUDYID, subjects.USUBJID, subjects.SITEID, subjects.TRT01P,
        subjects.TRT01A,
        subjects.ITTFL,
        subjects.SAFFL,
        subjects.TRT01P as TRTP,
        subjects.TRT01A as TRTA,
        p.paramcd as PARAMCD,
        p.param as PARAM,
        p.avisit as AVISIT,
        p.avisitn as AVISITN,
        case when p.paramcd in ('PERESP', 'MAPNE', 'LACT', 'LACTCLR') and regexp_full_match(p.avisit, 'H\d+')
            then p.avisit end as ATPT,
        case when p.paramcd in ('PERESP', 'MAPNE', 'LACT', 'LACTCLR') and regexp_full_match(p.avisit, 'H\d+')
            then p.avisitn end as ATPTN,
        p.areltm as ARELTM,
        case when p.areltm is not null then 'HOURS' end as ARELTMU,
        p.adtm as ADTM,
        cast(p.adtm as date) as ADT,
        cast(p.adtm as time) as ATM,
        case
            when cast(p.adtm as date) >= subjects.TRTSDT
                then date_diff('day', subjects.TRTSDT, cast(p.adtm as date)) + 1
            else date_diff('day', subjects.TRTSDT, cast(p.adtm as date))
        end as ADY,
        p.aval as AVAL,
        p.avalc as AVALC,
        p.ablfl as ABLFL,
        p.base as BASE,
        case when p.ablfl is null and p.base is not null then p.aval - p.base end as CHG,
        p.missrsn as MISSRSN
    from dated as p
    join subjects on subjects.SUBJID = p.subject_id
)

select * from final
order by USUBJID, PARAMCD, AVISITN, AVISIT

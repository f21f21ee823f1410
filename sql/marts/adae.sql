-- description: ADAE, adverse events: one row per reported event. Treatment-emergent when onset is on or after the first study-drug start and no later than the last stop plus the configured window; partial onset dates imputed (earliest possible, or the first dose when the partial date covers it); an event with no onset date at all is treatment-emergent (conservative rule) unless it ended before the first dose.
-- materialized: table
-- grain: USUBJID, AESEQ
-- tags: marts, adam
-- columns:
--   studyid: Study identifier
--   usubjid: Unique subject identifier
--   siteid: Study site identifier
--   trt01a: Actual treatment (masked in blinded builds)
--   saffl: Safety population flag
--   aeseq: Sequence number (eCRF repeat instance)
--   aeterm: Reported term
--   aedecod: Dictionary-derived term
--   aebodsys: Body system or organ class
--   astdtm: Analysis start date-time: imputed when partial (earliest instant the entry allows, or the first dose when the entry covers it and the event did not end before it); the first dose when no start was entered
--   astdtf: Start date imputation flag (D day, M month and day, Y whole date: no start entered); null when only the time was imputed
--   asttmf: Start time imputation flag (H when the time was imputed: a date without time, a partial or a missing start)
--   astdt: Analysis start date (date part of ASTDTM)
--   aendtm: Analysis end date-time
--   aendt: Analysis end date (date part of AENDTM)
--   astdy: Analysis start relative day (first dose = day 1, no day 0)
--   aendy: Analysis end relative day
--   trtemfl: Treatment-emergent analysis flag (Y, or null when not treatment-emergent)
--   trtemrsn: Why TRTEMFL is Y under an imputed onset: START DATE MISSING (conservative rule) or PARTIAL START DATE COVERS FIRST DOSE
--   teaewin: Treatment-emergence window after the last dose (hours)
--   aeser: Serious event (Y, N)
--   aesdth: Results in death
--   aeslife: Is life-threatening
--   aeshosp: Requires or prolongs hospitalisation
--   aesdisab: Persistent or significant disability
--   aescong: Congenital anomaly
--   aesmie: Other medically important event
--   aetoxgr: CTCAE grade (1-5)
--   aerel: Causality (sponsor terms: NOT RELATED, UNLIKELY RELATED, POSSIBLY RELATED, PROBABLY RELATED, RELATED), from the eCRF code by study.toml aerel_terms
--   aeacn: Action taken with study treatment (CDISC CT C66767), from the eCRF code by study.toml aeacn_terms
--   aeout: Outcome of adverse event (CDISC CT C66768), from the eCRF code by study.toml aeout_terms
--   aesifl: Adverse event of special interest
--   aesicat: Category of special interest
--   aoccfl: First treatment-emergent occurrence in the subject
--   aoccsfl: First treatment-emergent occurrence in the subject within the body system
--   aoccpfl: First treatment-emergent occurrence in the subject of the term
with subjects as (
    select STUDYID, USUBJID, SUBJID, SITEID, TRT01A, SAFFL, TRTSDTM, TRTEDTM from adsl
),

parameters as (
    -- the TEAE window and the eCRF code -> CDISC term mappings (study.toml [parameters])
    select
        teae_window_hours,
        map_from_entries(aerel_terms) as aerel_terms,
        map_from_entries(aeacn_terms) as aeacn_terms,
        map_from_entries(aeout_terms) as aeout_terms
    from src.study_parameters
),

partial_starts as (
    -- a start that did not type in full: the earliest and latest instant it can stand for (int_partial_dates)
    select subject_id, repeat_instance, precision, lo_dtm, hi_dtm, dtf
    from int_partial_dates
    where item = 'ae_start_dt'
),

imputed as (
    -- the earliest instant a (possibly partial) start can stand for, and what had to be imputed
    select
        ae.*,
        coalesce(ae.aestdtm, partial_starts.lo_dtm) as start_lo,
        partial_starts.hi_dtm as start_hi,
        partial_starts.precision,
        partial_starts.dtf as partial_dtf
    from stg_adverse_events as ae
    left join partial_starts using (subject_id, repeat_instance)
),

timed as (
    select
        imputed.*,
        subjects.*,
        case
            -- no start date at all: treatment-emergent by the conservative rule (onset at the first dose), unless
            -- the event ended before the first dose
            when imputed.start_lo is null and subjects.TRTSDTM is not null
                and (imputed.aeendtm is null or imputed.aeendtm >= subjects.TRTSDTM) then 'MISSING'
            when imputed.start_lo is not null and imputed.precision is not null
                and subjects.TRTSDTM between imputed.start_lo and imputed.start_hi
                and (imputed.aeendtm is null or imputed.aeendtm >= subjects.TRTSDTM) then 'COVERS FIRST DOSE'
        end as imputed_to_first_dose
    from imputed
    join subjects on subjects.SUBJID = imputed.subject_id
),

dated as (
    select
        timed.*,
        case when imputed_to_first_dose is not null then TRTSDTM else start_lo end as astdtm,
        case when imputed_to_first_dose = 'MISSING' then 'Y' else partial_dtf end as astdtf,
        case when imputed_to_first_dose = 'MISSING' or precision is not null then 'H' end as asttmf,
        case imputed_to_first_dose
            when 'MISSING' then 'START DATE MISSING'
            when 'COVERS FIRST DOSE' then 'PARTIAL START DATE COVERS FIRST DOSE'
        end as trtemrsn
    from timed
),

flagged as (
    select
        dated.*,
        parameters.teae_window_hours,
        parameters.aerel_terms[aerel_cd] as aerel_term,
        parameters.aeacn_terms[aeacn_cd] as aeacn_term,
        parameters.aeout_terms[aeout_cd] as aeout_term,
        -- ADaM's record-level flag: Y, or null (not treatment-emergent, or no onset or first dose to say)
        case
            when astdtm >= TRTSDTM
                and astdtm <= TRTEDTM + to_microseconds(cast(parameters.teae_window_hours * 3600e6 as bigint))
                then 'Y'
        end as trtemfl,
        case
            when cast(astdtm as date) >= cast(TRTSDTM as date)
                then date_diff('day', cast(TRTSDTM as date), cast(astdtm as date)) + 1
            else date_diff('day', cast(TRTSDTM as date), cast(astdtm as date))
        end as astdy,
        case
            when cast(aeendtm as date) >= cast(TRTSDTM as date)
                then date_diff('day', cast(TRTSDTM as date), cast(aeendtm as date)) + 1
            else date_diff('day', cast(TRTSDTM as date), cast(aeendtm as date))
        end as aendy
    from dated, parameters
),

occurrences as (
    select
        flagged.*,
        case when trtemfl = 'Y' and row_number() over (
            partition by subject_id, trtemfl order by astdtm, repeat_instance) = 1 then 'Y' end as aoccfl,
        case when trtemfl = 'Y' and row_number() over (
            partition by subject_id, trtemfl, aebodsys order by astdtm, repeat_instance) = 1 then 'Y' end as aoccsfl,
        case when trtemfl = 'Y' and row_number() over (
            partition by subject_id, trtemfl, aedecod order by astdtm, repeat_instance) = 1 then 'Y' end as aoccpfl
    from flagged
),

final as (
    select
        STUDYID,
        USUBJID,
        SITEID,
        TRT01A,
        SAFFL,
        repeat_instance as AESEQ,
        aeterm as AETERM,
        aedecod as AEDECOD,
        aebodsys as AEBODSYS,
        astdtm as ASTDTM,
        cast(astdtm as date) as ASTDT,
        astdtf as ASTDTF,
        asttmf as ASTTMF,
        aeendtm as AENDTM,
        cast(aeendtm as date) as AENDT,
        astdy as ASTDY,
        aendy as AENDY,
        trtemfl as TRTEMFL,
        case when trtemfl = 'Y' then trtemrsn end as TRTEMRSN,
        teae_window_hours as TEAEWIN,
        aeser as AESER,
        case when aeser = 'Y' then case when aesercrit = 'death' then 'Y' else 'N' end end as AESDTH,
        case when aeser = 'Y' then case when aesercrit = 'life-threatening' then 'Y' else 'N' end end as AESLIFE,
        case when aeser = 'Y' then case when aesercrit = 'hospitalisation' then 'Y' else 'N' end end as AESHOSP,
        case when aeser = 'Y' then case when aesercrit = 'disability' then 'Y' else 'N' end end as AESDISAB,
        case when aeser = 'Y' then case when aesercrit = 'congenital anomaly' then 'Y' else 'N' end end as AESCONG,
        case when aeser = 'Y' then case when aesercrit = 'medically important' then 'Y' else 'N' end end as AESMIE,
        aetoxgr as AETOXGR,
        aerel_term as AEREL,
        aeacn_term as AEACN,
        aeout_term as AEOUT,
        case when aesi is not null and aesi <> 'none' then 'Y' else 'N' end as AESIFL,
        case when aesi is not null and aesi <> 'none' then aesi end as AESICAT,
        aoccfl as AOCCFL,
        aoccsfl as AOCCSFL,
        aoccpfl as AOCCPFL
    from occurrences
)

select * from final
order by USUBJID, AESEQ

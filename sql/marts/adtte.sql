-- description: ADTTE, time to death from H0 (days), censored at last contact for survivors, with landmark mortality flags at day 3, 28 and 90. One row per randomised subject and parameter.
-- materialized: table
-- grain: USUBJID, PARAMCD
-- tags: marts, adam
-- columns:
--   studyid: Study identifier
--   usubjid: Unique subject identifier
--   siteid: Study site identifier
--   trt01p: Planned treatment (masked in blinded builds)
--   paramcd: Parameter code (TTDEATH)
--   param: Parameter description
--   aval: Time from H0 to death or censoring (days)
--   cnsr: Censored (1) or event (0)
--   evntdesc: Event or censoring description
--   dthd3fl: Died within 3 x 24 h of H0 (null: censored before day 3)
--   dthd28fl: Died within 28 x 24 h of H0 (null: censored before day 28)
--   dthd90fl: Died within 90 x 24 h of H0 (null: censored before day 90)
with subjects as (
    select STUDYID, USUBJID, SUBJID, SITEID, TRT01P from adsl where ITTFL = 'Y'
),

times as (
    select
        subject_id,
        death_hrs / 24 as death_days,
        lastcontact_days
    from int_subject_times
),

events as (
    select
        subject_id,
        coalesce(death_days, lastcontact_days) as aval,
        case when death_days is not null then 0 else 1 end as cnsr,
        case when death_days is not null then 'DEATH' else 'ALIVE AT LAST CONTACT' end as evntdesc,
        death_days,
        lastcontact_days
    from times
),

landmarks as (
    select
        *,
        case when death_days <= 3 then 'Y' when aval >= 3 then 'N' end as dthd3fl,
        case when death_days <= 28 then 'Y' when aval >= 28 then 'N' end as dthd28fl,
        case when death_days <= 90 then 'Y' when aval >= 90 then 'N' end as dthd90fl
    from events
),

final as (
    select
        subjects.STUDYID,
        subjects.USUBJID,
        subjects.SITEID,
        subjects.TRT01P,
        'TTDEATH' as PARAMCD,
        'Time to death from randomisation (days)' as PARAM,
        landmarks.aval as AVAL,
        landmarks.cnsr as CNSR,
        landmarks.evntdesc as EVNTDESC,
        landmarks.dthd3fl as DTHD3FL,
        landmarks.dthd28fl as DTHD28FL,
        landmarks.dthd90fl as DTHD90FL
    from landmarks
    join subjects on subjects.SUBJID = landmarks.subject_id
)

select * from final
order by USUBJID

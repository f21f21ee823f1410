-- description: ADTTE, time to death from H0 (days), censored at last contact for survivors (AVAL by one rule for both: ADTM - STARTDTM in days, a censoring date taken at H0's time of day), with landmark mortality flags at day 3, 28 and 90. One row per randomised subject and parameter. A death with a partial or missing date stays an event, at the imputed time of int_subject_times (ADTF / ATMF say so); landmark flags use only what is known.
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
--   startdtm: Time-to-event origin date-time (H0, randomisation)
--   startdt: Time-to-event origin date (date of H0)
--   aval: Time from H0 to death or censoring (days): ADTM - STARTDTM in days, one rule for events and censored subjects; for an imputed death, to the imputed date-time (the later of the earliest instant the partial date allows and the last known alive; the last known alive when no date is known); a censoring date (last contact) taken at H0's time of day, so whole days
--   adtm: Date-time of the event (death, imputed when ADTF or ATMF is set) or of censoring (the last contact date at H0's time of day, ATMF = H)
--   adt: Date of the event (death) or of censoring (last contact)
--   adtf: Analysis date imputation flag (D day, M month and day, Y whole date imputed from the last known alive)
--   atmf: Analysis time imputation flag (H when the time of death was imputed, and for every censoring date)
--   cnsr: Censored (1) or event (0): an event exactly when the subject is dead by the study's rule (int_death: vital status dead, or a death date entered)
--   evntdesc: Event or censoring description
--   cnsdtdsc: Censor date description (null for an event)
--   srcdom: Source data for the event or censoring date (ADSL)
--   srcvar: Source variable (DTHDT for a death, LSTALVDT for a censoring)
--   srcseq: Source sequence number (null: ADSL has one record per subject)
--   dthd3fl: Died within 3 x 24 h of H0 (null: censored before day 3, or an imputed death date that allows either)
--   dthd28fl: Died within 28 x 24 h of H0 (null: censored before day 28, or an imputed death date that allows either)
--   dthd90fl: Died within 90 x 24 h of H0 (null: censored before day 90, or an imputed death date that allows either)
with subjects as (
    select STUDYID, USUBJID, SUBJID, SITEID, TRT01P from adsl where ITTFL = 'Y'
),

times as (
    select
        subject_id,
        randdtm,
        dthfl,
        death_dtm,
        death_dtf,
        death_tmf,
        -- latest possible death: the death itself when complete, the end of the partial period, null if unknown
        death_max_hrs / 24 as death_max_days,
        lastcontact_days
    from int_subject_times
),

events as (
    select
        subject_id,
        -- dead by int_death's rule (then death_dtm is set: entered, or imputed)
        case when dthfl then 0 else 1 end as cnsr,
        case when dthfl then 'DEATH' else 'ALIVE AT LAST CONTACT' end as evntdesc,
        case when not dthfl then 'LAST CONTACT DATE (ALIVE), AT THE TIME OF DAY OF H0' end as cnsdtdsc,
        case when dthfl then 'DTHDT' else 'LSTALVDT' end as srcvar,
        death_max_days,
        lastcontact_days,
        randdtm,
        -- the censoring date-time: the last contact date at H0's time of day (a date has no time)
        case
            when dthfl then death_dtm
            when lastcontact_days is not null then randdtm + to_days(cast(lastcontact_days as integer))
        end as adtm,
        case
            when dthfl then cast(death_dtm as date)
            when lastcontact_days is not null then cast(randdtm as date) + cast(lastcontact_days as integer)
        end as adt,
        case when dthfl then death_dtf end as adtf,
        case when dthfl then death_tmf when lastcontact_days is not null then 'H' end as atmf
    from times
),

timed as (
    -- one rule for events and censored subjects: AVAL = ADTM - STARTDTM, in days
    select
        events.*,
        epoch(adtm - randdtm) / 86400.0 as aval
    from events
),

landmarks as (
    select
        *,
        -- Y: dead by day k even at the latest time the death date allows; N: alive at day k (censored after it,
        -- or dead after it even at the earliest time allowed); otherwise unknown
        case when death_max_days <= 3 then 'Y' when aval > 3 or (cnsr = 1 and aval >= 3) then 'N'
        end as dthd3fl,
        case when death_max_days <= 28 then 'Y' when aval > 28 or (cnsr = 1 and aval >= 28) then 'N'
        end as dthd28fl,
        case when death_max_days <= 90 then 'Y' when aval > 90 or (cnsr = 1 and aval >= 90) then 'N'
        end as dthd90fl
    from timed
),

final as (
    select
        -- identifiers and planned treatment, as ADSL has them
        subjects.STUDYID, subjects.USUBJID, subjects.SITEID, subjects.TRT01P,
        'TTDEATH' as PARAMCD,
        'Time to death from randomisation (days)' as PARAM,
        landmarks.randdtm as STARTDTM,
        cast(landmarks.randdtm as date) as STARTDT,
        landmarks.aval as AVAL,
        landmarks.cnsr as CNSR,
        landmarks.evntdesc as EVNTDESC,
        landmarks.cnsdtdsc as CNSDTDSC,
        'ADSL' as SRCDOM,
        landmarks.srcvar as SRCVAR,
        cast(null as integer) as SRCSEQ,
        landmarks.adtm as ADTM,
        landmarks.adt as ADT,
        landmarks.adtf as ADTF,
        landmarks.atmf as ATMF,
        landmarks.dthd3fl as DTHD3FL,
        landmarks.dthd28fl as DTHD28FL,
        landmarks.dthd90fl as DTHD90FL
    from landmarks
    join subjects on subjects.SUBJID = landmarks.subject_id
)

select * from final
order by USUBJID

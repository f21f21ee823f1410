-- description: Death, decided once for every mart (ADSL DTHFL / DTHDTM, ADTTE CNSR, ADEFF VFD28 through int_subject_times): a subject is dead when the end-of-study vital status is dead, or when a death date is entered (in full, partial, or text that does not type), whatever the vital status says. One row per subject with an end-of-study form. The contradictions are staging findings: a death date with the status alive (error, chk_death_status), with the status blank (warning, chk_death_status), the status dead without a death date (warning, end_of_study suite).
-- materialized: table
-- grain: subject_id
-- columns:
--   vital_status: Vital status as entered: DEAD, ALIVE, or null when blank
--   death_date_entered: A death date was entered: typed in full (dthdtm), or text that did not type (death_partial)
--   dthfl: Dead by the study's rule: vital status dead, or a death date entered
--   dthdtm: Death date-time as entered in full (null when partial, not typeable or absent)
--   dthdtm_hrs: Death as entered in full, hours from H0
--   death_partial: The entered death date text that did not type (e.g. '2019-06'), trimmed; null when none
--   death_status_conflict: ALIVE WITH DEATH DATE, DEATH DATE WITHOUT STATUS or DEAD WITHOUT DEATH DATE when the form contradicts itself; null when consistent
with end_of_study as (
    select subject_id, dthfl as status_dead, dthdtm, dthdtm_hrs from stg_end_of_study
),

untyped_dates as (
    -- a death date-time that did not type, as entered (e.g. '2019-06', '2019-06-10' without a time)
    select subject_id, dtc as death_partial
    from int_partial_dates
    where item = 'death_dt'
),

entered as (
    select
        end_of_study.subject_id,
        case when end_of_study.status_dead then 'DEAD' when not end_of_study.status_dead then 'ALIVE' end
            as vital_status,
        end_of_study.dthdtm is not null or untyped_dates.death_partial is not null as death_date_entered,
        end_of_study.dthdtm,
        end_of_study.dthdtm_hrs,
        untyped_dates.death_partial
    from end_of_study
    left join untyped_dates using (subject_id)
),

final as (
    select
        subject_id,
        vital_status,
        death_date_entered,
        coalesce(vital_status = 'DEAD', false) or death_date_entered as dthfl,
        dthdtm,
        dthdtm_hrs,
        death_partial,
        case
            when vital_status = 'ALIVE' and death_date_entered then 'ALIVE WITH DEATH DATE'
            when vital_status is null and death_date_entered then 'DEATH DATE WITHOUT STATUS'
            when vital_status = 'DEAD' and not death_date_entered then 'DEAD WITHOUT DEATH DATE'
        end as death_status_conflict
    from entered
)

select * from final

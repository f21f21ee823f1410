-- description: Each randomised subject's clock: H0, death and treatment start/stop in hours from H0, last contact in days.
-- materialized: table
-- grain: subject_id
-- columns:
--   randdtm: Randomisation date-time (H0)
--   death_hrs: Death, hours from H0 (null if alive at last contact)
--   trtstart_hrs: First study-drug start, hours from H0
--   trtend_hrs: Last study-drug stop, hours from H0 (the last start when no stop was recorded)
--   lastcontact_days: Last contact (alive), days from H0's date
with randomised as (
    select subject_id, site_id, randdtm from stg_randomisation
),

deaths as (
    select subject_id, dthdtm_hrs, last_contact_dt from stg_end_of_study
),

dosing as (
    select
        subject_id,
        min(exstdtm_hrs) as trtstart_hrs,
        max(coalesce(exendtm_hrs, exstdtm_hrs)) as trtend_hrs
    from stg_study_drug
    group by subject_id
),

final as (
    select
        randomised.subject_id,
        randomised.site_id,
        randomised.randdtm,
        deaths.dthdtm_hrs as death_hrs,
        dosing.trtstart_hrs,
        dosing.trtend_hrs,
        date_diff('day', cast(randomised.randdtm as date), deaths.last_contact_dt) as lastcontact_days
    from randomised
    left join deaths using (subject_id)
    left join dosing using (subject_id)
)

select * from final

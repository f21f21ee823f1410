-- description: End of study form: vital status, death, discharges and last contact, one row per subject.
-- materialized: table
-- grain: subject_id
-- columns:
--   dthfl: Died during follow-up
--   dthdtm: Date-time of death
--   dthdtm_hrs: Death, hours from H0
--   dthcaus: Cause of death (verbatim)
--   icu_disch_dt: ICU discharge date
--   hosp_disch_dt: Hospital discharge date
--   last_contact_dt: Date of last contact (alive)
--   withdrawal: Withdrew from the study
with source as (
    select * from src.end_of_study
),

renamed as (
    select
        -- keys
        subject_id,
        site_id,
        -- vital status
        vital_status = '2' as dthfl,
        death_dt as dthdtm,
        death_dt_hrs as dthdtm_hrs,
        death_cause as dthcaus,
        -- follow-up
        icu_disch_dt,
        hosp_disch_dt,
        last_contact_dt,
        withdrawal
    from source
    qualify row_number() over (partition by subject_id order by _source_row nulls last) = 1
)

select * from renamed

-- description: Invasive mechanical ventilation periods: one row per intubation (a re-intubation is a new row).
-- materialized: table
-- grain: subject_id, repeat_instance
-- columns:
--   intubdtm: Intubation date-time
--   extubdtm: Extubation date-time (null while ventilated)
--   intub_hrs: Intubation, hours from H0
--   extub_hrs: Extubation, hours from H0
with source as (
    select * from src.ventilation
),

renamed as (
    select
        -- keys
        subject_id,
        site_id,
        repeat_instance,
        -- period
        intub_dt as intubdtm,
        extub_dt as extubdtm,
        intub_dt_hrs as intub_hrs,
        extub_dt_hrs as extub_hrs
    from source
    where intub_dt is not null
)

select * from renamed

-- description: Hemodynamic readings (hourly H0-H24, or more often): one row per reading.
-- materialized: table
-- grain: subject_id, repeat_instance
-- columns:
--   vsdtm: Reading date-time
--   vsdtm_hrs: Reading, hours from H0
--   map: Mean arterial pressure (mmHg)
--   sbp: Systolic blood pressure (mmHg)
--   dbp: Diastolic blood pressure (mmHg)
--   hr: Heart rate (beats/min)
--   rhythm: Cardiac rhythm (decoded)
with source as (
    select * from src.hemodynamics
),

renamed as (
    select
        -- keys
        subject_id,
        site_id,
        repeat_instance,
        -- reading
        hd_dt as vsdtm,
        hd_dt_hrs as vsdtm_hrs,
        hd_map as "map",
        hd_sbp as sbp,
        hd_dbp as dbp,
        hd_hr as hr,
        hd_rhythm_decod as rhythm
    from source
    where hd_dt is not null
)

select * from renamed

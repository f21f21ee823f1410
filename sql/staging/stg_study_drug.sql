-- description: Study-drug infusion segments: one row per segment (repeating form).
-- materialized: table
-- grain: subject_id, repeat_instance
-- columns:
--   exstdtm: Segment start date-time
--   exendtm: Segment stop date-time (null while running)
--   exstdtm_hrs: Segment start, hours from H0
--   exendtm_hrs: Segment stop, hours from H0
--   rate_ml_h: Infusion rate (mL/h)
--   stop_reason: Reason the segment stopped (decoded)
with source as (
    select * from src.study_drug
),

renamed as (
    select
        -- keys
        subject_id,
        site_id,
        repeat_instance,
        -- exposure
        drug_start_dt as exstdtm,
        drug_stop_dt as exendtm,
        drug_start_dt_hrs as exstdtm_hrs,
        drug_stop_dt_hrs as exendtm_hrs,
        drug_rate as rate_ml_h,
        drug_stop_reason_decod as stop_reason
    from source
    where drug_start_dt is not null
)

select * from renamed

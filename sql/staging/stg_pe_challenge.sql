-- description: Phenylephrine (PE) challenges at H0, H6 and H12: one row per subject and challenge. The PE response is derived downstream.
-- materialized: table
-- grain: subject_id, event
-- columns:
--   atpt: Time point of the challenge (H0, H6, H12)
--   pedtm: Challenge date-time
--   pedtm_hrs: Challenge, hours from H0
--   map_before: MAP before the challenge (mmHg)
--   ne_rate_base: NE rate during the test, as base (µg/kg/min)
--   pe_max_dose: Maximum phenylephrine dose reached (µg/kg/min)
--   map_at_max: MAP at the maximum PE dose (mmHg)
--   aborted: Challenge aborted
--   abort_reason: Reason the challenge was aborted
with source as (
    select * from src.pe_challenge
),

renamed as (
    select
        -- keys
        subject_id,
        site_id,
        event,
        upper(replace(event, '_arm_1', '')) as atpt,
        -- challenge
        pe_dt as pedtm,
        pe_dt_hrs as pedtm_hrs,
        pe_map_before as map_before,
        pe_ne_rate_base as ne_rate_base,
        pe_max_dose,
        pe_map_max as map_at_max,
        coalesce(pe_aborted, false) as aborted,
        pe_abort_reason as abort_reason
    from source
)

select * from renamed

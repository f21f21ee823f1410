-- description: Daily fluid totals: one row per subject and day (H24 = day 1, D2-D7).
-- materialized: table
-- grain: subject_id, event
-- columns:
--   visit: Day code (H24, D2 ... D7)
--   day: Study day of the totals (1-7)
--   fluid_in_ml: Total fluids in (mL)
--   fluid_out_ml: Total fluids out (mL)
--   urine_ml: Urine output (mL)
with source as (
    select * from src.fluids
),

renamed as (
    select
        -- keys (visit and day: stg_visits)
        subject_id, site_id, event, visit, day,
        -- totals
        fluid_in as fluid_in_ml,
        fluid_out as fluid_out_ml,
        urine_out as urine_ml
    from source
    left join stg_visits using (event)
)

select * from renamed

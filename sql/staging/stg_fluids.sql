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
        -- keys
        subject_id,
        site_id,
        event,
        upper(replace(replace(event, '_arm_1', ''), 'day_', 'D')) as visit,
        case when event = 'h24_arm_1' then 1 else try_cast(regexp_extract(event, 'day_(\d+)', 1) as integer) end as day,
        -- totals
        fluid_in as fluid_in_ml,
        fluid_out as fluid_out_ml,
        urine_out as urine_ml
    from source
)

select * from renamed

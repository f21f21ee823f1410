-- description: Fluid balance per subject and day: daily in - out (mL), and cumulative from H0 to the end of that day.
-- materialized: table
-- grain: subject_id, day
-- columns:
--   day: Study day (1 = H0 to H24)
--   visit: Day code (H24, D2 ... D7)
--   balance_ml: Daily fluid balance, in - out (mL)
--   cumulative_ml: Cumulative fluid balance from H0 (mL); null once a day is missing
with daily as (
    select
        subject_id,
        day,
        visit,
        fluid_in_ml - fluid_out_ml as balance_ml
    from stg_fluids
    where day is not null
),

final as (
    select
        subject_id,
        day,
        visit,
        balance_ml,
        case
            -- a day missing before this one, or this day's balance missing, leaves the running total unknown
            when count(balance_ml) over running = day
                then sum(balance_ml) over running
        end as cumulative_ml
    from daily
    window running as (partition by subject_id order by day rows between unbounded preceding and current row)
)

select * from final

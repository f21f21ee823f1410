-- description: Ventilator-free days at day 28 per randomised subject: 0 if dead by day 28, else 28 minus the days on invasive ventilation within [H0, H0 + 28 d] (every intubation period counted, open periods running to day 28), never below 0.
-- materialized: table
-- grain: subject_id
-- columns:
--   vent_days: Days on invasive ventilation within [H0, H0 + 28 d] (fractional)
--   dead_by_d28: Died within 28 x 24 h of H0
--   vfd28: Ventilator-free days at day 28
with periods as (
    select
        v.subject_id,
        greatest(v.intub_hrs, 0) as lo_hrs,
        least(coalesce(v.extub_hrs, 1e9), coalesce(t.death_hrs, 1e9), 28 * 24) as hi_hrs
    from stg_ventilation as v
    join int_subject_times as t using (subject_id)
),

ventilated as (
    select subject_id, sum(hi_hrs - lo_hrs) / 24 as vent_days
    from periods
    where hi_hrs > lo_hrs
    group by subject_id
),

final as (
    select
        t.subject_id,
        coalesce(ventilated.vent_days, 0) as vent_days,
        coalesce(t.death_hrs <= 28 * 24, false) as dead_by_d28,
        case
            when t.death_hrs <= 28 * 24 then 0
            else greatest(0, 28 - coalesce(ventilated.vent_days, 0))
        end as vfd28
    from int_subject_times as t
    left join ventilated using (subject_id)
)

select * from final

-- description: Ventilator-free days at day 28 per randomised subject: 0 if dead by day 28, else 28 minus the days on invasive ventilation within [H0, H0 + 28 d] (every intubation period counted, open periods running to day 28 or death), never below 0. Periods that overlap or touch (an intubation at or before the end of an earlier period of the subject) are merged first, so no time on the ventilator is counted twice; an overlap is a staging finding (chk_ventilation_overlap, warning), touching periods are not.
-- materialized: table
-- grain: subject_id
-- columns:
--   vent_days: Days on invasive ventilation within [H0, H0 + 28 d] (fractional), overlapping periods merged
--   vent_periods: Ventilation periods within [H0, H0 + 28 d] after overlapping and touching ones are merged
--   dead_by_d28: Died within 28 x 24 h of H0
--   vfd28: Ventilator-free days at day 28
with periods as (
    -- each intubation clipped to [H0, the earliest of extubation, death and H0 + 28 d]; open periods run on
    select
        v.subject_id,
        greatest(v.intub_hrs, 0) as lo_hrs,
        least(coalesce(v.extub_hrs, 1e9), coalesce(t.death_hrs, 1e9), 28 * 24) as hi_hrs
    from stg_ventilation as v
    join int_subject_times as t using (subject_id)
),

in_window as (
    select * from periods where hi_hrs > lo_hrs
),

ordered as (
    -- the latest end of the subject's earlier periods (in order of intubation)
    select
        *,
        max(hi_hrs) over (
            partition by subject_id order by lo_hrs, hi_hrs rows between unbounded preceding and 1 preceding
        ) as earlier_hi_hrs
    from in_window
),

islands as (
    -- a period starts a new island unless it starts at or before the end of an earlier one (overlap or touch)
    select
        *,
        sum(case when lo_hrs <= earlier_hi_hrs then 0 else 1 end) over (
            partition by subject_id order by lo_hrs, hi_hrs rows unbounded preceding
        ) as island
    from ordered
),

merged as (
    select subject_id, island, min(lo_hrs) as lo_hrs, max(hi_hrs) as hi_hrs
    from islands
    group by subject_id, island
),

ventilated as (
    select subject_id, sum(hi_hrs - lo_hrs) / 24 as vent_days, count(*) as vent_periods
    from merged
    group by subject_id
),

final as (
    select
        t.subject_id,
        coalesce(ventilated.vent_days, 0) as vent_days,
        coalesce(ventilated.vent_periods, 0) as vent_periods,
        coalesce(t.death_hrs <= 28 * 24, false) as dead_by_d28,
        case
            when t.death_hrs <= 28 * 24 then 0
            else greatest(0, 28 - coalesce(ventilated.vent_days, 0))
        end as vfd28
    from int_subject_times as t
    left join ventilated using (subject_id)
)

select * from final

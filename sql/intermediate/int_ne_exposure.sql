-- description: Norepinephrine exposure per subject over [H0, H0+24 h] and [H0, H0+48 h]: cumulative dose (rate x minutes, µg/kg) and peak rate (µg/kg/min), NE as base. Segments are clipped to the window and end at death.
-- materialized: table
-- grain: subject_id, window_hrs
-- columns:
--   window_hrs: Window length from H0 (24 or 48 h)
--   cum_ne: Cumulative NE as base over the window (µg/kg)
--   peak_ne: Highest NE rate as base running in the window (µg/kg/min)
with windows as (
    select window_hrs from (values (24.0), (48.0)) as w(window_hrs)
),

segments as (
    select
        s.subject_id,
        s.start_hrs,
        least(coalesce(s.end_hrs, 1e9), coalesce(t.death_hrs, 1e9)) as end_hrs,
        s.rate
    from int_vasopressor_segments as s
    left join int_subject_times as t using (subject_id)
    where s.is_ne
),

clipped as (
    select
        segments.subject_id,
        windows.window_hrs,
        segments.rate,
        greatest(segments.start_hrs, 0) as lo_hrs,
        least(segments.end_hrs, windows.window_hrs) as hi_hrs
    from segments
    cross join windows
),

exposure as (
    select
        subject_id,
        window_hrs,
        sum(rate * (hi_hrs - lo_hrs) * 60) as cum_ne,
        max(rate) as peak_ne
    from clipped
    where hi_hrs > lo_hrs
    group by subject_id, window_hrs
)

select * from exposure

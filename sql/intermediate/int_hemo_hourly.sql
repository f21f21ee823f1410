-- description: Hemodynamics on the hour, H0 to H24: the reading nearest each whole hour (within 30 min), the NE rate running at that hour (as base) and MAP/NE. Hours after death are absent.
-- materialized: table
-- grain: subject_id, hour
-- columns:
--   hour: Hours from H0 (0-24)
--   map: MAP nearest the hour (mmHg)
--   hr: Heart rate nearest the hour (beats/min)
--   ne_base: NE rate as base running at the hour (µg/kg/min); 0 when NE had stopped
--   map_ne_ratio: MAP / NE base dose; null when NE is 0 or unknown
with grid as (
    select t.subject_id, h.hour
    from int_subject_times as t
    cross join (select unnest(range(0, 25)) as hour) as h
    where t.death_hrs is null or h.hour <= t.death_hrs
),

nearest_reading as (
    select
        subject_id,
        cast(round(vsdtm_hrs) as bigint) as hour,
        arg_min("map", abs(vsdtm_hrs - round(vsdtm_hrs))) as "map",
        arg_min(hr, abs(vsdtm_hrs - round(vsdtm_hrs))) as hr
    from stg_hemodynamics
    where vsdtm_hrs between -0.5 and 24.5
    group by all
),

ne_at_hour as (
    select
        grid.subject_id,
        grid.hour,
        max(s.rate) as ne_base
    from grid
    join int_vasopressor_segments as s
        on s.subject_id = grid.subject_id
        and s.is_ne
        and s.start_hrs <= grid.hour
        and (s.end_hrs is null or s.end_hrs > grid.hour)
    group by all
),

final as (
    select
        grid.subject_id,
        grid.hour,
        nearest_reading."map",
        nearest_reading.hr,
        ne_at_hour.ne_base,
        case when ne_at_hour.ne_base > 0 then nearest_reading."map" / ne_at_hour.ne_base end as map_ne_ratio
    from grid
    left join nearest_reading using (subject_id, hour)
    left join ne_at_hour using (subject_id, hour)
)

select * from final

-- description: Hemodynamics on the hour, H0 to H24 (the study's hemo_hourly_last_hour): the reading nearest each whole hour (within 30 min), the NE rate running at that hour (as base, int_ne_running) and MAP/NE. Hours after death are absent.
-- materialized: table
-- grain: subject_id, hour
-- columns:
--   hour: Hours from H0 (0-24)
--   map: MAP nearest the hour (mmHg); equally near, the earlier reading
--   hr: Heart rate nearest the hour (beats/min); equally near, the earlier reading
--   ne_base: NE rate as base running at the hour (µg/kg/min); 0 when NE had stopped
--   map_ne_ratio: MAP / NE base dose; null when NE is 0 or unknown
with parameters as (
    select hemo_hourly_last_hour as last_hour from src.study_parameters
),

grid as (
    select t.subject_id, h.hour
    from int_subject_times as t
    cross join (select unnest(range(0, cast(last_hour as bigint) + 1)) as hour from parameters) as h
    where t.death_hrs is null or h.hour <= t.death_hrs
),

nearest_reading as (
    select
        subject_id,
        cast(round(vsdtm_hrs) as bigint) as hour,
        -- nearest first; equally near, the earlier reading; at the same time, the first entered
        arg_min("map", (abs(vsdtm_hrs - round(vsdtm_hrs)), vsdtm_hrs, repeat_instance)) as "map",
        arg_min(hr, (abs(vsdtm_hrs - round(vsdtm_hrs)), vsdtm_hrs, repeat_instance)) as hr
    from stg_hemodynamics, parameters
    where vsdtm_hrs between -0.5 and parameters.last_hour + 0.5
    group by all
),

ne_at_hour as (
    select grid.subject_id, grid.hour, ne.rate as ne_base
    from grid
    asof join int_ne_running as ne on ne.subject_id = grid.subject_id and grid.hour >= ne.from_hrs
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

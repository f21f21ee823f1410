-- description: The time points of the scheduled forms (labs, SOFA, fluids): one row per event, its visit code and study day, decoded from the REDCap event name once for the forms that join it.
-- materialized: table
-- grain: event
-- columns:
--   event: Event (REDCap unique event name, e.g. h6_arm_1, day_2_arm_1)
--   visit: Time point code (H0, H6, H12, H24, D2 ... D7)
--   day: Study day (H24 = day 1, D2-D7 = 2-7; null before H24)
with events as (
    select event from src.labs
    union
    select event from src.sofa
    union
    select event from src.fluids
)

select
    event,
    upper(replace(replace(event, '_arm_1', ''), 'day_', 'D')) as visit,
    case when event = 'h24_arm_1' then 1 else try_cast(regexp_extract(event, 'day_(\d+)', 1) as integer) end as day
from events
where event is not null

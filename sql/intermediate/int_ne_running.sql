-- description: The norepinephrine rate running (as base), one rule for every model that asks for it at a time t (adsl NEBL at H0, int_hemo_hourly, int_sofa_derived): one row per subject and NE rate change, the rate holding from from_hrs until the next change. The rate running at t is that of the latest change at or before t (`asof left join int_ne_running as ne on ne.subject_id = x.subject_id and x.t >= ne.from_hrs`): a change exactly at t counts, 0 after a stop, null (no row) before the first NE record. Of changes at the same instant the last recorded holds.
-- materialized: table
-- grain: subject_id, from_hrs
-- columns:
--   from_hrs: The rate holds from this time, hours from H0 (a change)
--   to_hrs: ... until this time, the next change (null: the last record, still holding)
--   rate: NE rate as base (µg/kg/min) from from_hrs; 0 after a stop
with ne_segments as (
    select subject_id, segment, start_hrs, end_hrs, rate
    from int_vasopressor_segments
    where is_ne
),

final as (
    -- a segment of no length (two changes at one instant) never runs: the later change holds from that instant
    select subject_id, start_hrs as from_hrs, end_hrs as to_hrs, rate
    from ne_segments
    qualify row_number() over (partition by subject_id, start_hrs order by segment desc) = 1
)

select * from final

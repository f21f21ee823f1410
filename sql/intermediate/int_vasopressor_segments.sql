-- description: Vasopressor infusion segments built from rate changes: a rate holds from its change until the next change of the same drug (open-ended for the last one). NE rates as base, µg/kg/min; other drugs as labelled.
-- materialized: table
-- grain: subject_id, drug, segment
-- columns:
--   drug: Vasopressor
--   is_ne: Segment is norepinephrine
--   segment: Segment number within subject and drug, in time order
--   start_hrs: Segment start, hours from H0
--   end_hrs: Segment end, hours from H0 (null: still running at the last record)
--   rate: Rate during the segment: NE as base (µg/kg/min), other drugs as labelled; 0 after a stop
with changes as (
    select
        subject_id,
        repeat_instance,
        drug,
        is_ne,
        chgdtm_hrs,
        coalesce(case when is_ne then ne_rate_base else rate_labelled end, 0) as rate
    from stg_vasopressors
    where chgdtm_hrs is not null and drug is not null
),

segments as (
    select
        subject_id,
        drug,
        is_ne,
        row_number() over (partition by subject_id, drug order by chgdtm_hrs, repeat_instance) as segment,
        chgdtm_hrs as start_hrs,
        lead(chgdtm_hrs) over (partition by subject_id, drug order by chgdtm_hrs, repeat_instance) as end_hrs,
        rate
    from changes
)

select * from segments

-- description: Dates entered that did not type in full (partial, or not a date), one rule for every model that imputes them (int_subject_times: death; adae: AE start): the text as entered (CDISC --DTC), its precision, and the earliest and latest instant it can stand for. A model then chooses within [lo_dtm, hi_dtm] by its own rule.
-- materialized: table
-- grain: item, subject_id, repeat_instance
-- columns:
--   item: The eCRF date item (death_dt: end of study; ae_start_dt: adverse events)
--   repeat_instance: Repeat instance of the form (adverse events); null for a non-repeating form
--   dtc: The text as entered, trimmed (e.g. '2019-06'); a date-time that did not type
--   precision: DAY (a date without time), MONTH (year and month) or YEAR (year only); null when the text is no ISO 8601 date
--   lo_dtm: Earliest instant the text allows: 00:00 of its first day (null when no date)
--   hi_dtm: Latest instant the text allows, to the minute: 23:59 of its last day (null when no date)
--   dtf: Date imputation flag when imputed within the range: D (day imputed, MONTH), M (month and day, YEAR); null for DAY (only the time is imputed) or no date
with end_of_study as (
    -- the row staging keeps (stg_end_of_study): the first by source row
    select subject_id, death_dt, death_dt_dtc
    from src.end_of_study
    qualify row_number() over (partition by subject_id order by _source_row nulls last) = 1
),

entered as (
    select 'death_dt' as item, subject_id, null::integer as repeat_instance, death_dt_dtc as dtc
    from end_of_study
    where death_dt is null and death_dt_dtc is not null
    union
    select 'ae_start_dt', subject_id, repeat_instance, ae_start_dt_dtc
    from src.adverse_events
    where ae_start_dt is null and ae_start_dt_dtc is not null
),

ranged as (
    select
        *,
        case
            when regexp_full_match(dtc, '\d{4}-\d{2}-\d{2}') then 'DAY'
            when regexp_full_match(dtc, '\d{4}-\d{2}') then 'MONTH'
            when regexp_full_match(dtc, '\d{4}') then 'YEAR'
        end as form_precision,
        case
            when regexp_full_match(dtc, '\d{4}-\d{2}-\d{2}') then try_cast(dtc as date)::timestamp
            when regexp_full_match(dtc, '\d{4}-\d{2}') then try_cast(dtc || '-01' as date)::timestamp
            when regexp_full_match(dtc, '\d{4}') then try_cast(dtc || '-01-01' as date)::timestamp
        end as lo_dtm
    from entered
),

final as (
    select
        item,
        subject_id,
        repeat_instance,
        dtc,
        -- a text of a date's form that is no calendar date ('2024-02-30') has no precision
        case when lo_dtm is not null then form_precision end as precision,
        lo_dtm,
        case form_precision
            when 'DAY' then lo_dtm + interval 1 day - interval 1 minute
            when 'MONTH' then lo_dtm + interval 1 month - interval 1 minute
            when 'YEAR' then lo_dtm + interval 1 year - interval 1 minute
        end as hi_dtm,
        case when lo_dtm is not null then case form_precision when 'MONTH' then 'D' when 'YEAR' then 'M' end end
            as dtf
    from ranged
)

select * from final

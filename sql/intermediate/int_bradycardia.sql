-- description: Bradycardia per randomised subject: an episode is a run of at least the configured number of consecutive readings with HR below the configured threshold; flagged over H0-H24 and during study-drug infusion.
-- materialized: table
-- grain: subject_id, period
-- columns:
--   period: H0-H24, the study's bradycardia_period (readings in [H0, H0 + window]), or ON-TREATMENT (readings while a study-drug segment ran)
--   readings: Heart-rate readings in the period
--   episodes: Bradycardia episodes in the period
--   brady: Any bradycardia episode in the period (null when no reading)
with parameters as (
    select
        bradycardia_hr_threshold as hr_threshold,
        bradycardia_min_readings as min_readings,
        bradycardia_window_hours as window_hours,
        bradycardia_period as window_period
    from src.study_parameters
),

readings as (
    -- a reading exported twice (identical rows, a raw finding of its own) counts once: (subject, repeat instance)
    -- is then unique, so the runs below have one order, whatever order the rows come in
    select distinct h.subject_id, h.repeat_instance, h.vsdtm_hrs, h.hr
    from stg_hemodynamics as h
    join int_subject_times using (subject_id)
    where h.hr is not null
),

in_period as (
    select readings.*, parameters.window_period as period
    from readings, parameters
    where readings.vsdtm_hrs between 0 and parameters.window_hours
    union all
    select distinct readings.*, 'ON-TREATMENT' as period
    from readings
    join stg_study_drug as d
        on d.subject_id = readings.subject_id
        and readings.vsdtm_hrs >= d.exstdtm_hrs
        and readings.vsdtm_hrs <= coalesce(d.exendtm_hrs, 1e9)
),

flagged as (
    select
        in_period.*,
        in_period.hr < parameters.hr_threshold as low
    from in_period, parameters
),

runs as (
    select
        *,
        row_number() over (partition by subject_id, period order by vsdtm_hrs, repeat_instance)
            - row_number() over (partition by subject_id, period, low order by vsdtm_hrs, repeat_instance) as run_id
    from flagged
),

episodes as (
    select subject_id, period, count(distinct run_id) as episodes
    from (
        select runs.subject_id, runs.period, runs.run_id
        from runs, parameters
        where runs.low
        group by runs.subject_id, runs.period, runs.run_id, parameters.min_readings
        having count(*) >= parameters.min_readings
    )
    group by subject_id, period
),

reading_counts as (
    select subject_id, period, count(*) as readings
    from flagged
    group by subject_id, period
),

periods as (
    select subject_id, period
    from int_subject_times
    cross join (select window_period as period from parameters union all select 'ON-TREATMENT') as p
),

final as (
    select
        periods.subject_id,
        periods.period,
        coalesce(reading_counts.readings, 0) as readings,
        coalesce(episodes.episodes, 0) as episodes,
        case when reading_counts.readings > 0 then coalesce(episodes.episodes, 0) > 0 end as brady
    from periods
    left join reading_counts using (subject_id, period)
    left join episodes using (subject_id, period)
)

select * from final

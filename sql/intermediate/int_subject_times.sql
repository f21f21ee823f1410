-- description: Each randomised subject's clock: H0, death and treatment start/stop in hours from H0, last contact in days. Whether the subject died is int_death's rule; a death whose date is partial or missing is imputed: the later of the earliest instant the entered text allows and the last known alive, no later than the latest instant it allows (int_partial_dates gives the range; flags death_dtf / death_tmf).
-- materialized: table
-- grain: subject_id
-- columns:
--   randdtm: Randomisation date-time (H0)
--   dthfl: Dead by the study's rule (int_death: vital status dead, or a death date entered); false without an end-of-study form
--   death_hrs: Death, hours from H0 (null exactly when dthfl is false); imputed when the death date-time is partial or missing (see death_dtf, death_tmf)
--   death_dtm: Death date-time used in analysis (as entered, or imputed)
--   death_dtf: Death date imputation flag: D day, M month and day, Y whole date imputed (dead, nothing usable entered); null when the date was complete
--   death_tmf: Death time imputation flag: H when the time of death was imputed
--   death_max_hrs: Latest time of death the entered date allows, hours from H0 (= death_hrs when complete; null when the date is unknown)
--   lastalive_hrs: Last known alive, hours from H0: the latest of H0, study-drug starts, hemodynamic readings, lab samples, intubations, and (midnight of) the last contact and discharge dates
--   trtstart_hrs: First study-drug start, hours from H0
--   trtend_hrs: Last study-drug stop, hours from H0 (the last start when no stop was recorded)
--   lastcontact_days: Last contact (alive), days from H0's date
with randomised as (
    select subject_id, site_id, randdtm from stg_randomisation
),

deaths as (
    -- whether the subject is dead is decided in int_death (one rule for every mart); the time is imputed here
    select
        int_death.subject_id,
        int_death.dthfl,
        int_death.dthdtm,
        int_death.dthdtm_hrs,
        eos.last_contact_dt,
        eos.icu_disch_dt,
        eos.hosp_disch_dt
    from int_death
    join stg_end_of_study as eos using (subject_id)
),

dosing as (
    select
        subject_id,
        min(exstdtm_hrs) as trtstart_hrs,
        max(coalesce(exendtm_hrs, exstdtm_hrs)) as trtend_hrs,
        max(exstdtm_hrs) as laststart_hrs
    from stg_study_drug
    group by subject_id
),

alive_records as (
    -- records only a living subject produces (stops and extubations are left out: they may happen at death)
    select subject_id, max(vsdtm_hrs) as at_hrs from stg_hemodynamics group by subject_id
    union all
    select subject_id, max(lbdtm_hrs) from stg_labs group by subject_id
    union all
    select subject_id, max(intub_hrs) from stg_ventilation group by subject_id
),

last_alive_records as (
    select subject_id, max(at_hrs) as at_hrs from alive_records group by subject_id
),

partial_deaths as (
    -- the earliest (lo) and latest (hi) instant a death date-time that did not type in full can stand for
    select subject_id, precision, lo_dtm as partial_lo, hi_dtm as partial_hi, dtf
    from int_partial_dates
    where item = 'death_dt'
),

death_bounds as (
    select
        randomised.subject_id,
        randomised.randdtm,
        deaths.dthfl,
        deaths.dthdtm,
        deaths.dthdtm_hrs,
        deaths.last_contact_dt,
        partial_deaths.precision,
        partial_deaths.partial_lo,
        partial_deaths.partial_hi,
        partial_deaths.dtf,
        greatest(
            0::double,
            dosing.laststart_hrs,
            last_alive_records.at_hrs,
            epoch(cast(deaths.last_contact_dt as timestamp) - randomised.randdtm) / 3600,
            epoch(cast(deaths.icu_disch_dt as timestamp) - randomised.randdtm) / 3600,
            epoch(cast(deaths.hosp_disch_dt as timestamp) - randomised.randdtm) / 3600
        ) as lastalive_hrs
    from randomised
    left join deaths using (subject_id)
    left join dosing using (subject_id)
    left join last_alive_records using (subject_id)
    left join partial_deaths using (subject_id)
),

imputed as (
    select
        subject_id,
        lastalive_hrs,
        case
            when not coalesce(dthfl, false) then null
            when dthdtm is not null then dthdtm_hrs
            when partial_lo is not null then least(
                greatest(epoch(partial_lo - randdtm) / 3600, lastalive_hrs), epoch(partial_hi - randdtm) / 3600)
            else lastalive_hrs
        end as death_hrs,
        case
            when dthdtm is not null then dthdtm_hrs
            when partial_lo is not null then epoch(partial_hi - randdtm) / 3600
        end as death_max_hrs,
        case
            when dthdtm is not null then null
            when precision is not null then dtf
            when dthfl then 'Y'
        end as death_dtf,
        case when dthdtm is null and (precision is not null or dthfl) then 'H' end as death_tmf
    from death_bounds
),

final as (
    select
        randomised.subject_id,
        randomised.site_id,
        randomised.randdtm,
        coalesce(deaths.dthfl, false) as dthfl,
        imputed.death_hrs,
        case
            when deaths.dthdtm is not null then deaths.dthdtm
            when imputed.death_hrs is not null
                then randomised.randdtm + to_microseconds(cast(round(imputed.death_hrs * 3600e6) as bigint))
        end as death_dtm,
        imputed.death_dtf,
        imputed.death_tmf,
        imputed.death_max_hrs,
        imputed.lastalive_hrs,
        dosing.trtstart_hrs,
        dosing.trtend_hrs,
        date_diff('day', cast(randomised.randdtm as date), deaths.last_contact_dt) as lastcontact_days
    from randomised
    left join deaths using (subject_id)
    left join dosing using (subject_id)
    left join imputed using (subject_id)
)

select * from final

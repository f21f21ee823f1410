-- description: Lactate at each lab time point and its clearance from H0: (L0 - Lt) / L0 x 100 at H6, H12 and H24.
-- materialized: table
-- grain: subject_id, visit
-- columns:
--   visit: Time point (H0, H6, H12, H24, D2 ... D7)
--   nominal_hrs: Nominal hours from H0
--   sample_hrs: Sample time, hours from H0 (the lab's date-time; null when not entered)
--   lactate: Lactate (mmol/L)
--   lactate_h0: Lactate at H0 (mmol/L)
--   clearance_pct: Lactate clearance from H0 (%), at H6, H12 and H24 only; null when L0 is 0 or missing
with labs as (
    select
        subject_id,
        visit,
        case
            when visit like 'H%' then try_cast(substr(visit, 2) as double)
            else 24.0 * try_cast(substr(visit, 2) as integer)
        end as nominal_hrs,
        lbdtm_hrs as sample_hrs,
        lactate
    from stg_labs
),

baseline as (
    select subject_id, lactate as lactate_h0 from labs where visit = 'H0'
),

final as (
    select
        labs.subject_id,
        labs.visit,
        labs.nominal_hrs,
        labs.sample_hrs,
        labs.lactate,
        baseline.lactate_h0,
        case
            when labs.visit in ('H6', 'H12', 'H24') and baseline.lactate_h0 > 0
                then (baseline.lactate_h0 - labs.lactate) / baseline.lactate_h0 * 100
        end as clearance_pct
    from labs
    left join baseline using (subject_id)
)

select * from final

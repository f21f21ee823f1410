-- description: Laboratory results: one row per subject and lab time point (H0, H6, H12, H24, D2-D7).
-- materialized: table
-- grain: subject_id, event
-- columns:
--   visit: Time point code (H0, H6, H12, H24, D2 ... D7)
--   lbdtm: Sample date-time
--   lbdtm_hrs: Sample, hours from H0
--   lactate: Lactate (mmol/L)
--   ph: Arterial pH
--   pao2: PaO2 (mmHg)
--   fio2: FiO2 (fraction)
--   platelets: Platelets (10^3/µL)
--   bilirubin: Bilirubin (µmol/L)
--   creatinine: Creatinine (µmol/L)
with source as (
    select * from src.labs
),

renamed as (
    select
        -- keys (visit: stg_visits)
        subject_id, site_id, event, visit,
        -- sample
        lab_dt as lbdtm,
        lab_dt_hrs as lbdtm_hrs,
        -- results
        lactate,
        ph,
        pao2,
        fio2,
        platelets,
        bilirubin,
        creatinine
    from source
    left join stg_visits using (event)
)

select * from renamed

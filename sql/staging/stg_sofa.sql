-- description: SOFA as entered by the site: one row per subject and SOFA time point (H0, H24, D2-D7).
-- materialized: table
-- grain: subject_id, event
-- columns:
--   visit: Time point code (H0, H24, D2 ... D7)
--   gcs: Glasgow coma scale
--   sofa_total: SOFA total as entered by the site (0-24)
with source as (
    select * from src.sofa
),

renamed as (
    select
        -- keys (visit: stg_visits)
        subject_id, site_id, event, visit,
        -- inputs
        gcs,
        -- sub-scores as entered
        sofa_resp,
        sofa_coag,
        sofa_liver,
        sofa_cardio,
        sofa_cns,
        sofa_renal,
        sofa_total
    from source
    left join stg_visits using (event)
)

select * from renamed

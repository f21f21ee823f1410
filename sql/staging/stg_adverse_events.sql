-- description: Adverse events as reported and coded: one row per event (repeating form).
-- materialized: table
-- grain: subject_id, repeat_instance
-- columns:
--   aeterm: Reported term (verbatim)
--   aedecod: Dictionary-derived term
--   aebodsys: Body system or organ class
--   aestdtm: Start date-time
--   aeendtm: End date-time
--   aest_hrs: Start, hours from H0
--   aeen_hrs: End, hours from H0
--   aeser: Serious (Y, N)
--   aesercrit: Seriousness criterion (ICH E2A)
--   aetoxgr: CTCAE grade (1-5)
--   aerel: Relationship to study drug
--   aeacn: Action taken with study drug
--   aeout: Outcome
--   aerel_cd: Relationship to study drug, eCRF code (ADAE maps it to its term)
--   aeacn_cd: Action taken with study drug, eCRF code
--   aeout_cd: Outcome, eCRF code
--   aesi: Adverse event of special interest (none, bradycardia, hypotension, atrial fibrillation, AV block, delirium)
with source as (
    select * from src.adverse_events
),

renamed as (
    select
        -- keys
        subject_id,
        site_id,
        repeat_instance,
        -- terms
        ae_term as aeterm,
        ae_decod as aedecod,
        ae_bodsys as aebodsys,
        -- timing
        ae_start_dt as aestdtm,
        ae_end_dt as aeendtm,
        ae_start_dt_hrs as aest_hrs,
        ae_end_dt_hrs as aeen_hrs,
        -- seriousness and severity
        case when ae_serious then 'Y' when not ae_serious then 'N' end as aeser,
        ae_ser_crit_decod as aesercrit,
        try_cast(ae_grade as integer) as aetoxgr,
        ae_rel_decod as aerel,
        ae_action_decod as aeacn,
        ae_outcome_decod as aeout,
        ae_rel as aerel_cd,
        ae_action as aeacn_cd,
        ae_outcome as aeout_cd,
        ae_aesi_decod as aesi
    from source
)

select * from renamed

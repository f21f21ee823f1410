-- description: Vasopressor rate changes: one row per change (repeating form). A rate holds until the next change of the same drug.
-- materialized: table
-- grain: subject_id, repeat_instance
-- columns:
--   drug: Vasopressor (decoded)
--   is_ne: Row is norepinephrine (the study's NE drug code)
--   chgdtm: Date-time of the rate change
--   chgdtm_hrs: Rate change, hours from H0
--   rate_labelled: Rate as labelled on the syringe
--   unit: Unit of the labelled rate (decoded)
--   salt: Salt of the labelled NE rate (decoded)
--   ne_rate_base: NE rate as base (µg/kg/min); null for other drugs
with source as (
    select * from src.vasopressors
),

parameters as (
    select ne_drug_code from src.study_parameters
),

renamed as (
    select
        -- keys
        subject_id,
        site_id,
        repeat_instance,
        -- drug
        vp_drug_decod as drug,
        vp_drug = parameters.ne_drug_code as is_ne,
        -- rate change
        vp_dt as chgdtm,
        vp_dt_hrs as chgdtm_hrs,
        vp_rate as rate_labelled,
        vp_unit_decod as unit,
        vp_salt_decod as salt,
        vp_rate_base as ne_rate_base
    from source, parameters
    where vp_dt is not null
)

select * from renamed

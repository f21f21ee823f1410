-- description: Eligibility at screening: criteria met, NE dose at screening (as labelled and as base) and hypoperfusion signs.
-- materialized: table
-- grain: subject_id
-- columns:
--   scr_ne_dose: NE dose at screening as labelled (µg/kg/min)
--   scr_ne_salt: Salt of the labelled screening dose
--   scr_ne_base: NE dose at screening as base (µg/kg/min)
--   eligible: Subject eligible
with source as (
    select * from src.eligibility
),

renamed as (
    select
        -- keys
        subject_id,
        site_id,
        -- inclusion criteria
        elig_adult,
        elig_septic_shock,
        elig_fluids,
        elig_ne_dose,
        elig_hypoperfusion,
        elig_mech_vent,
        elig_sedation,
        elig_consent,
        -- exclusion criteria
        excl_cardiac_arrest,
        excl_low_co,
        excl_bradycardia,
        excl_av_block,
        excl_stroke,
        excl_liver_failure,
        -- screening measurements
        scr_ne_dose,
        scr_ne_salt_decod as scr_ne_salt,
        scr_ne_dose_base as scr_ne_base,
        scr_lactate,
        scr_mottling,
        scr_urine,
        eligible
    from source
)

select * from renamed

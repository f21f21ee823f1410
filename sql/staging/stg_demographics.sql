-- description: Demographics form (screening): one row per subject. Identifiers (initials, date of birth) were dropped in staging.
-- materialized: table
-- grain: subject_id
-- columns:
--   subject_id: eCRF record id
--   sex: Sex code (M, F)
--   age: Age at screening (years)
--   weight_kg: Dosing weight (kg)
--   height_cm: Height (cm)
--   icu_admdtm: ICU admission date-time
--   infection_source: Source of infection (decoded)
--   saps2: SAPS II at inclusion
--   chronic_bb: Chronic beta-blocker treatment
with source as (
    select * from src.demographics
),

renamed as (
    select
        -- keys
        subject_id,
        site_id,
        -- demographics
        case sex when '1' then 'M' when '2' then 'F' end as sex,
        age,
        weight as weight_kg,
        height as height_cm,
        -- history
        icu_adm_dt as icu_admdtm,
        infection_source_decod as infection_source,
        saps2,
        chronic_bb
    from source
    qualify row_number() over (partition by subject_id order by _source_row nulls last) = 1
)

select * from renamed

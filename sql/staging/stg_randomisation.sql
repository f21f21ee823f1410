-- description: Randomisation form: one row per randomised subject, when and with which kit. The arm is never in the eCRF.
-- materialized: table
-- grain: subject_id
-- columns:
--   subject_id: eCRF record id (site-number)
--   site_id: Site (REDCap data access group / ODM site)
--   randdtm: Randomisation date-time (H0, study time zero)
--   kit_no: Study-drug kit number allocated at randomisation
with source as (
    select * from src.randomisation
),

renamed as (
    select
        -- keys
        subject_id,
        site_id,
        -- randomisation
        rand_dt as randdtm,
        kit_no
    from source
    where rand_dt is not null
    -- the earliest randomisation; two at the same time: the first in the export
    qualify row_number() over (partition by subject_id order by rand_dt, _source_row) = 1
)

select * from renamed

-- description: Phenylephrine response per randomised subject at H0, H6 and H12: MAP at the maximum PE dose / MAP before the challenge. A missing challenge keeps its row with the reason.
-- materialized: table
-- grain: subject_id, atpt
-- columns:
--   atpt: Time point (H0, H6, H12)
--   nominal_hrs: Nominal time of the challenge (hours from H0)
--   pe_response: MAP at maximum PE dose / MAP before (ratio; x100 gives %MAPdmax)
--   missing_reason: Why the response is missing (DIED BEFORE TIME POINT, NOT DONE, ABORTED WITHOUT RESULT)
with time_points as (
    select atpt, nominal_hrs from (values ('H0', 0.0), ('H6', 6.0), ('H12', 12.0)) as tp(atpt, nominal_hrs)
),

grid as (
    select t.subject_id, t.death_hrs, tp.atpt, tp.nominal_hrs
    from int_subject_times as t
    cross join time_points as tp
),

challenges as (
    select
        subject_id,
        atpt,
        pedtm_hrs,
        map_before,
        map_at_max,
        aborted,
        case when map_before > 0 then map_at_max / map_before end as pe_response
    from stg_pe_challenge
    qualify row_number() over (partition by subject_id, atpt order by pedtm_hrs nulls last) = 1
),

final as (
    select
        grid.subject_id,
        grid.atpt,
        grid.nominal_hrs,
        challenges.pedtm_hrs,
        challenges.map_before,
        challenges.map_at_max,
        challenges.pe_response,
        case
            when challenges.pe_response is not null then null
            when challenges.subject_id is null and grid.death_hrs < grid.nominal_hrs then 'DIED BEFORE TIME POINT'
            when challenges.subject_id is null then 'NOT DONE'
            when challenges.aborted then 'ABORTED WITHOUT RESULT'
            else 'NOT DONE'
        end as missing_reason
    from grid
    left join challenges using (subject_id, atpt)
)

select * from final

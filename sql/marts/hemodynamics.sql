-- description: Hemodynamics over the first 24 h, per subject and hour: MAP, heart rate, NE as base and MAP/NE (the basis of the paper's figures 3 and 4).
-- materialized: table
-- grain: USUBJID, HOUR
-- tags: marts
-- columns:
--   studyid: Study identifier
--   usubjid: Unique subject identifier
--   siteid: Study site identifier
--   trt01p: Planned treatment (masked in blinded builds)
--   hour: Hours from H0 (0-24)
--   map: MAP nearest the hour (mmHg)
--   hr: Heart rate nearest the hour (beats/min)
--   ne_base: NE rate as base running at the hour (µg/kg/min)
--   mapne: MAP / NE base dose (null when NE is 0)
with subjects as (
    select STUDYID, USUBJID, SUBJID, SITEID, TRT01P from adsl where ITTFL = 'Y'
),

final as (
    select
        -- identifiers and planned treatment, as ADSL has them
        subjects.STUDYID, subjects.USUBJID, subjects.SITEID, subjects.TRT01P,
        h.hour as HOUR,
        h."map" as MAP,
        h.hr as HR,
        h.ne_base as NE_BASE,
        h.map_ne_ratio as MAPNE
    from int_hemo_hourly as h
    join subjects on subjects.SUBJID = h.subject_id
)

select * from final
order by USUBJID, HOUR

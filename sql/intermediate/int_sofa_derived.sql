-- description: SOFA derived from its inputs at each SOFA time point (H0, H24, D2-D7), beside the site's entry. Respiration from PaO2/FiO2 (3-4 only while ventilated), coagulation from platelets, liver from bilirubin, cardiovascular from MAP and vasopressors running (NE as base), CNS from GCS, renal from creatinine and the day's urine.
-- materialized: table
-- grain: subject_id, visit
-- columns:
--   visit: Time point (H0, H24, D2 ... D7)
--   at_hrs: Time of assessment, hours from H0 (lab sample time, else nominal)
--   pf_ratio: PaO2 / FiO2 (mmHg)
--   ventilated: On invasive ventilation at the assessment
--   sofa_resp_d: Respiration sub-score, derived
--   sofa_coag_d: Coagulation sub-score, derived
--   sofa_liver_d: Liver sub-score, derived
--   sofa_cardio_d: Cardiovascular sub-score, derived (MAP >= 70 assumed when no MAP was recorded and no vasopressor ran)
--   sofa_cns_d: CNS sub-score, derived from the GCS
--   sofa_renal_d: Renal sub-score, derived from creatinine and the day's urine
--   sofa_total_d: SOFA total, derived (null when a sub-score is missing)
--   sofa_total_site: SOFA total as entered by the site
--   sofa_agrees: Derived total equals the site's total
with assessments as (
    select
        s.subject_id,
        s.visit,
        coalesce(l.lbdtm_hrs, case when s.visit = 'H0' then 0.0 when s.visit = 'H24' then 24.0
                                   else 24.0 * try_cast(substr(s.visit, 2) as integer) end) as at_hrs,
        case when s.visit = 'H24' then 1 when s.visit like 'D%' then try_cast(substr(s.visit, 2) as integer) end
            as day,
        l.pao2,
        l.fio2,
        l.platelets,
        l.bilirubin,
        l.creatinine,
        s.gcs,
        s.sofa_total as sofa_total_site
    from stg_sofa as s
    left join stg_labs as l using (subject_id, visit)
),

ventilation as (
    select
        a.subject_id,
        a.visit,
        bool_or(v.intub_hrs <= a.at_hrs and (v.extub_hrs is null or v.extub_hrs > a.at_hrs)) as ventilated
    from assessments as a
    left join stg_ventilation as v using (subject_id)
    group by all
),

vasopressors as (
    select
        a.subject_id,
        a.visit,
        max(case when s.drug = 'epinephrine' then s.rate end) as epinephrine,
        max(case when s.drug = 'dobutamine' then s.rate end) as dobutamine
    from assessments as a
    left join int_vasopressor_segments as s
        on s.subject_id = a.subject_id
        and s.start_hrs <= a.at_hrs
        and (s.end_hrs is null or s.end_hrs > a.at_hrs)
    group by all
),

ne_running as (
    select a.subject_id, a.visit, ne.rate as ne_base
    from assessments as a
    asof join int_ne_running as ne on ne.subject_id = a.subject_id and a.at_hrs >= ne.from_hrs
),

pressure as (
    select
        a.subject_id,
        a.visit,
        -- nearest first; equally near, the reading before the assessment; at the same time, the first entered
        arg_min(h."map", (abs(h.vsdtm_hrs - a.at_hrs), h.vsdtm_hrs, h.repeat_instance)) as "map"
    from assessments as a
    join stg_hemodynamics as h
        on h.subject_id = a.subject_id
        and abs(h.vsdtm_hrs - a.at_hrs) <= 1
    group by all
),

urine as (
    select subject_id, day, urine_ml from stg_fluids
),

inputs as (
    select
        a.*,
        a.pao2 / nullif(a.fio2, 0) as pf_ratio,
        coalesce(v.ventilated, false) as ventilated,
        ne.ne_base,
        vp.epinephrine,
        vp.dobutamine,
        p."map",
        u.urine_ml
    from assessments as a
    left join ventilation as v using (subject_id, visit)
    left join vasopressors as vp using (subject_id, visit)
    left join ne_running as ne using (subject_id, visit)
    left join pressure as p using (subject_id, visit)
    left join urine as u using (subject_id, day)
),

scored as (
    select
        *,
        case
            when pf_ratio is null then null
            when pf_ratio < 100 and ventilated then 4
            when pf_ratio < 200 and ventilated then 3
            when pf_ratio < 300 then 2
            when pf_ratio < 400 then 1
            else 0
        end as sofa_resp_d,
        case
            when platelets is null then null
            when platelets < 20 then 4
            when platelets < 50 then 3
            when platelets < 100 then 2
            when platelets < 150 then 1
            else 0
        end as sofa_coag_d,
        case
            when bilirubin is null then null
            when bilirubin > 204 then 4
            when bilirubin >= 102 then 3
            when bilirubin >= 33 then 2
            when bilirubin >= 20 then 1
            else 0
        end as sofa_liver_d,
        case
            when coalesce(ne_base, 0) > 0.1 or coalesce(epinephrine, 0) > 0.1 then 4
            when coalesce(ne_base, 0) > 0 or coalesce(epinephrine, 0) > 0 then 3
            when coalesce(dobutamine, 0) > 0 then 2
            when "map" < 70 then 1
            else 0
        end as sofa_cardio_d,
        case
            when gcs is null then null
            when gcs < 6 then 4
            when gcs <= 9 then 3
            when gcs <= 12 then 2
            when gcs <= 14 then 1
            else 0
        end as sofa_cns_d,
        case
            when creatinine is null and urine_ml is null then null
            else greatest(
                case
                    when creatinine > 440 then 4
                    when creatinine >= 300 then 3
                    when creatinine >= 171 then 2
                    when creatinine >= 110 then 1
                    else 0
                end,
                case when urine_ml < 200 then 4 when urine_ml < 500 then 3 else 0 end
            )
        end as sofa_renal_d
    from inputs
),

final as (
    select
        subject_id,
        visit,
        at_hrs,
        pf_ratio,
        ventilated,
        sofa_resp_d,
        sofa_coag_d,
        sofa_liver_d,
        sofa_cardio_d,
        sofa_cns_d,
        sofa_renal_d,
        sofa_resp_d + sofa_coag_d + sofa_liver_d + sofa_cardio_d + sofa_cns_d + sofa_renal_d as sofa_total_d,
        sofa_total_site,
        sofa_resp_d + sofa_coag_d + sofa_liver_d + sofa_cardio_d + sofa_cns_d + sofa_renal_d
            = sofa_total_site as sofa_agrees
    from scored
)

select * from final

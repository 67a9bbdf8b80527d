-- Candidate collections: every combination of 1-3 assigned attributes that instantiates a type
-- pairing (seed collection_type_pairings: one value per type) and that at least var min_products
-- products carry in full. Counted from the product-attribute table with joins on product_id and a
-- group-by that Spark distributes: no products x combinations cross join.
--
-- A combination is flagged as a contradiction when a seed rule says so (collection_contradictions)
-- or when merchant data never pairs two of its attributes although independence would predict at
-- least var contradiction_min_expected products with both (e.g. men's sarees).

with pairings as (

    select pairing_id, type_1, type_2, type_3
    from {{ ref('collection_type_pairings') }}

),

assigned as (

    select product_id, attribute_id, attribute_type, value, score
    from {{ ref('product_attributes_assigned') }}

),

-- one row per (pairing, product, attribute combination) the product carries in full
product_combinations as (

    select
        p.pairing_id,
        a1.product_id,
        a1.attribute_id as anchor_attribute_id,
        array_sort(filter(array(
            named_struct('attribute_type', a1.attribute_type, 'attribute_id', a1.attribute_id, 'value', a1.value),
            case when p.type_2 is not null then named_struct('attribute_type', a2.attribute_type, 'attribute_id', a2.attribute_id, 'value', a2.value) end,
            case when p.type_3 is not null then named_struct('attribute_type', a3.attribute_type, 'attribute_id', a3.attribute_id, 'value', a3.value) end
        ), x -> x is not null)) as attributes,
        (a1.score + coalesce(a2.score, 0) + coalesce(a3.score, 0))
            / (1 + case when p.type_2 is not null then 1 else 0 end + case when p.type_3 is not null then 1 else 0 end)
            as mean_score
    from pairings as p
    inner join assigned as a1
        on a1.attribute_type = p.type_1
    left join assigned as a2
        on p.type_2 is not null
       and a2.product_id = a1.product_id
       and a2.attribute_type = p.type_2
    left join assigned as a3
        on p.type_3 is not null
       and a3.product_id = a1.product_id
       and a3.attribute_type = p.type_3
    where (p.type_2 is null or a2.product_id is not null)
      and (p.type_3 is null or a3.product_id is not null)

),

combinations as (

    select
        attributes,
        min(pairing_id) as pairing_id,
        min(anchor_attribute_id) as anchor_attribute_id,
        count(distinct product_id) as product_count,
        avg(mean_score) as mean_score
    from product_combinations
    group by attributes
    having count(distinct product_id) >= {{ var('min_products') }}

),

candidates as (

    select
        -- sorted attribute ids -> stable id (and URL) across runs
        'col_' || substr(sha2(array_join(array_sort(transform(attributes, x -> x.attribute_id)), '|'), 256), 1, 16)
            as collection_id,
        array_sort(transform(attributes, x -> x.attribute_id)) as attribute_ids,
        attributes,
        array_join(transform(attributes, x -> x.attribute_type || '=' || x.value), '|') as attribute_key,
        size(attributes) as n_attributes,
        pairing_id,
        anchor_attribute_id,
        product_count,
        mean_score
    from combinations

),

-- ---------------------------------------------------------------- contradictions
candidate_pairs as (

    select c.collection_id, x.attribute_type as type_1, x.value as value_1, x.attribute_id as id_1,
           y.attribute_type as type_2, y.value as value_2, y.attribute_id as id_2
    from candidates as c
    lateral view explode(c.attributes) ex as x
    lateral view explode(c.attributes) ey as y
    where x.attribute_id < y.attribute_id

),

merchant as (

    -- attributes the merchant stated (catalog fields / merchant_attributes)
    select product_id, attribute_id
    from {{ ref('product_attributes_curated') }}
    where array_contains(source_backends, 'catalog')
      and attribute_id in (select id_1 from candidate_pairs union select id_2 from candidate_pairs)

),

merchant_totals as (

    select count(distinct product_id) as n_products from {{ ref('int_products') }}

),

merchant_counts as (

    select attribute_id, count(*) as n from merchant group by attribute_id

),

merchant_pair_counts as (

    select m1.attribute_id as id_1, m2.attribute_id as id_2, count(*) as n
    from merchant as m1
    inner join merchant as m2
        on m1.product_id = m2.product_id
       and m1.attribute_id < m2.attribute_id
    group by m1.attribute_id, m2.attribute_id

),

pair_evidence as (

    select
        cp.collection_id,
        cp.type_1, cp.value_1, cp.type_2, cp.value_2,
        coalesce(pc.n, 0) as observed_together,
        coalesce(c1.n, 0) * coalesce(c2.n, 0) / t.n_products as expected_together,
        r.reason as rule_reason
    from candidate_pairs as cp
    cross join merchant_totals as t
    left join merchant_counts as c1 on cp.id_1 = c1.attribute_id
    left join merchant_counts as c2 on cp.id_2 = c2.attribute_id
    left join merchant_pair_counts as pc on cp.id_1 = pc.id_1 and cp.id_2 = pc.id_2
    left join {{ ref('collection_contradictions') }} as r
        on (lower(r.attribute_type_1) = cp.type_1 and lower(r.value_1) = lower(cp.value_1)
            and lower(r.attribute_type_2) = cp.type_2 and lower(r.value_2) = lower(cp.value_2))
        or (lower(r.attribute_type_1) = cp.type_2 and lower(r.value_1) = lower(cp.value_2)
            and lower(r.attribute_type_2) = cp.type_1 and lower(r.value_2) = lower(cp.value_1))

),

contradictions as (

    select
        collection_id,
        array_join(collect_list(
            case
                when rule_reason is not null
                    then value_1 || ' + ' || value_2 || ': ' || rule_reason
                else value_1 || ' + ' || value_2 || ': never together in merchant data (expected '
                    || cast(cast(round(expected_together) as bigint) as string) || ')'
            end), '; ') as contradiction_reason
    from pair_evidence
    where rule_reason is not null
       or (observed_together = 0 and expected_together >= {{ var('contradiction_min_expected') }})
    group by collection_id

)

select c.*, x.contradiction_reason
from candidates as c
left join contradictions as x
    on c.collection_id = x.collection_id

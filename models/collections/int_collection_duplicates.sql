-- Near-duplicate collections: full-match product sets with Jaccard >= var duplicate_jaccard collapse
-- onto one canonical collection. Collections are ranked (fewer attributes, better title, more
-- products, id); a collection with no better-ranked neighbour is a root; every other collection
-- points to its best-ranked root neighbour, or stays canonical when it has none (a two-pass greedy
-- clustering: a canonical target is never itself a duplicate).

with members as (

    select collection_id, product_id
    from {{ ref('int_collection_feed_matches') }}
    where match_type = 'full'

),

sizes as (

    select collection_id, count(*) as n from members group by collection_id

),

overlaps as (

    select a.collection_id as id_1, b.collection_id as id_2, count(*) as shared
    from members as a
    inner join members as b
        on a.product_id = b.product_id
       and a.collection_id < b.collection_id
    group by a.collection_id, b.collection_id

),

similar as (

    select o.id_1, o.id_2, o.shared / (s1.n + s2.n - o.shared) as jaccard
    from overlaps as o
    inner join sizes as s1 on o.id_1 = s1.collection_id
    inner join sizes as s2 on o.id_2 = s2.collection_id
    where o.shared / (s1.n + s2.n - o.shared) >= {{ var('duplicate_jaccard') }}

),

ranks as (

    select collection_id, row_number() over (
        order by n_attributes, coalesce(quality_score, 0) desc, product_count desc, collection_id) as collection_rank
    from {{ ref('int_collection_titles') }}
    where held_back_reason is null

),

neighbours as (

    select id_1 as collection_id, id_2 as neighbour_id, jaccard from similar
    union all
    select id_2 as collection_id, id_1 as neighbour_id, jaccard from similar

),

ranked_neighbours as (

    select n.*, r1.collection_rank, r2.collection_rank as neighbour_rank
    from neighbours as n
    inner join ranks as r1 on n.collection_id = r1.collection_id
    inner join ranks as r2 on n.neighbour_id = r2.collection_id

),

roots as (

    select collection_id
    from ranks
    where collection_id not in (
        select collection_id from ranked_neighbours where neighbour_rank < collection_rank)

),

pointers as (

    select collection_id, min_by(named_struct('id', neighbour_id, 'jaccard', jaccard), neighbour_rank) as target
    from ranked_neighbours
    where neighbour_rank < collection_rank
      and neighbour_id in (select collection_id from roots)
    group by collection_id

)

select
    r.collection_id,
    coalesce(p.target.id, r.collection_id) as canonical_collection_id,
    p.target.jaccard as jaccard_with_canonical
from ranks as r
left join pointers as p
    on r.collection_id = p.collection_id

-- Candidates matching the blocklist seed: the whole value, or a whole word/phrase inside it.

with blocklist as (

    select
        attribute_type,
        {{ normalize_attribute_value('term') }} as term_key,
        term,
        lower(match) as match,
        reason
    from {{ ref('attribute_blocklist') }}

)

select
    c.attribute_type,
    c.value_key,
    min(b.term) as term,
    min(b.reason) as reason
from {{ ref('int_attribute_candidates') }} as c
inner join blocklist as b
    on (b.attribute_type = '*' or b.attribute_type = c.attribute_type)
   and (
        c.value_key = b.term_key
        or (b.match = 'word' and concat(' ', c.value_key, ' ') like concat('% ', b.term_key, ' %'))
   )
group by c.attribute_type, c.value_key

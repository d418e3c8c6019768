//! Pages of a list: `?limit=` and an opaque cursor naming the last item of the page before, so
//! a walk sees every item once even while items come and go.

use base64::Engine as _;
use uuid::Uuid;

use super::wire::PageQuery;
use super::Failure;

const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

/// The order a list is in, by its items' keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

/// One page of `items`, which are in `order` and keyed uniquely by `key`.
pub fn page<T>(
    items: Vec<T>,
    order: Order,
    key: impl Fn(&T) -> (i64, Uuid),
    query: &PageQuery,
) -> Result<(Vec<T>, Option<String>), Failure> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Failure::invalid("limit", format!("Use a limit from 1 to {MAX_PAGE}.")));
    }
    let start = match &query.cursor {
        None => 0,
        Some(cursor) => {
            let after = decode_cursor(cursor).ok_or_else(|| {
                Failure::invalid("cursor", "This cursor is not one a page of this list gave.")
            })?;
            // Past the item the cursor names, even if that item has gone since.
            items
                .iter()
                .position(|item| match order {
                    Order::Ascending => key(item) > after,
                    Order::Descending => key(item) < after,
                })
                .unwrap_or(items.len())
        }
    };
    let mut rest: Vec<T> = items.into_iter().skip(start).collect();
    let next = if rest.len() > limit as usize {
        rest.truncate(limit as usize);
        rest.last().map(|last| encode_cursor(key(last)))
    } else {
        None
    };
    Ok((rest, next))
}

fn encode_cursor((at, id): (i64, Uuid)) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{at}.{id}"))
}

fn decode_cursor(cursor: &str) -> Option<(i64, Uuid)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (at, id) = text.split_once('.')?;
    Some((at.parse().ok()?, Uuid::parse_str(id).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<(i64, Uuid)> {
        (0..n).map(|i| (i as i64, Uuid::from_u128(i as u128))).collect()
    }

    #[test]
    fn pages_walk_the_whole_list_once_in_either_order() {
        for descending in [false, true] {
            let mut items = ids(7);
            let order = if descending { Order::Descending } else { Order::Ascending };
            if descending {
                items.reverse();
            }
            let mut seen = Vec::new();
            let mut query = PageQuery { limit: Some(3), cursor: None };
            loop {
                let (page, next) = page(items.clone(), order, |k| *k, &query).unwrap();
                seen.extend(page);
                match next {
                    Some(cursor) => query.cursor = Some(cursor),
                    None => break,
                }
            }
            assert_eq!(seen, items);
        }
    }

    #[test]
    fn a_cursor_survives_its_item_going_and_a_forged_one_is_refused() {
        let items = ids(5);
        let cursor = encode_cursor(items[1]);
        let without: Vec<_> = items.iter().copied().filter(|k| *k != items[1]).collect();
        let query = PageQuery { limit: Some(10), cursor: Some(cursor) };
        assert_eq!(page(without, Order::Ascending, |k| *k, &query).unwrap().0, items[2..].to_vec());
        let forged = PageQuery { limit: None, cursor: Some("not-a-cursor".into()) };
        assert!(page(items.clone(), Order::Ascending, |k| *k, &forged).is_err());
        assert!(page(items, Order::Ascending, |k| *k, &PageQuery { limit: Some(0), cursor: None })
            .is_err());
    }
}

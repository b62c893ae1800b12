use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::problem::ApiError;

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 200;
/// The last page number a client may ask for (documented as the maximum).
pub const MAX_PAGE: u32 = 1_000_000;

/// `?page=N&page_size=M` as sent by the client (1-based pages).
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page number (default 1, at most 1000000).
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u32>,
    /// Items per page (default 50, at most 200).
    #[param(minimum = 1, maximum = 200)]
    pub page_size: Option<u32>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u32,
    pub page_size: u32,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            page: 1,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

impl PageQuery {
    pub fn validate(self) -> Result<Page, ApiError> {
        let page = self.page.unwrap_or(1);
        if !(1..=MAX_PAGE).contains(&page) {
            return Err(ApiError::invalid_field(
                "page",
                format!("must be between 1 and {MAX_PAGE}"),
            ));
        }
        let page_size = self.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(ApiError::invalid_field(
                "page_size",
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        Ok(Page { page, page_size })
    }
}

impl Page {
    pub fn offset(&self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.page_size)
    }

    pub fn limit(&self) -> i64 {
        i64::from(self.page_size)
    }

    /// Slices an in-memory, already ordered list (cache-backed listings).
    pub fn slice<T: Clone>(&self, all: &[T]) -> Vec<T> {
        let start = usize::try_from(self.offset())
            .unwrap_or(usize::MAX)
            .min(all.len());
        let end = start.saturating_add(self.page_size as usize).min(all.len());
        all[start..end].to_vec()
    }
}

/// `{items, page, page_size, total}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub page_size: u32,
    pub total: i64,
}

impl<T> Paged<T> {
    pub fn new(items: Vec<T>, page: Page, total: i64) -> Self {
        Self {
            items,
            page: page.page,
            page_size: page.page_size,
            total,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paged<U> {
        Paged {
            items: self.items.into_iter().map(f).collect(),
            page: self.page,
            page_size: self.page_size,
            total: self.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(PageQuery::default().validate().unwrap(), Page::default());
        assert!(
            PageQuery {
                page: Some(0),
                page_size: None
            }
            .validate()
            .is_err()
        );
        assert!(
            PageQuery {
                page: Some(MAX_PAGE + 1),
                page_size: None
            }
            .validate()
            .is_err()
        );
        assert!(
            PageQuery {
                page: None,
                page_size: Some(201)
            }
            .validate()
            .is_err()
        );
        assert!(
            PageQuery {
                page: None,
                page_size: Some(0)
            }
            .validate()
            .is_err()
        );
        let p = PageQuery {
            page: Some(3),
            page_size: Some(10),
        }
        .validate()
        .unwrap();
        assert_eq!((p.offset(), p.limit()), (20, 10));
    }

    #[test]
    fn slices_in_memory_lists() {
        let all: Vec<u32> = (0..25).collect();
        let p = Page {
            page: 3,
            page_size: 10,
        };
        assert_eq!(p.slice(&all), vec![20, 21, 22, 23, 24]);
        let beyond = Page {
            page: 9,
            page_size: 10,
        };
        assert!(beyond.slice(&all).is_empty());
    }
}

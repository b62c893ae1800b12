//! One page of the rows that belong to a parent row, the read every
//! "history of one thing" listing makes (a game's operations, a delivery's
//! attempts).

/// Defines `async fn $name(conn, $parent: Uuid, page: Page) ->
/// QueryResult<Paged<$row>>`: one page of the `$table` rows whose `$parent`
/// column is the given id, read as `$row` in `$order`, with the count of
/// all of them as the page's `total`.
///
/// The caller has `diesel::prelude::*` and `diesel_async::RunQueryDsl` in
/// scope, as every store module does.
#[macro_export]
macro_rules! page_of_children {
    ($(#[$meta:meta])* $vis:vis fn $name:ident: $table:ident by $parent:ident as $row:ty, order by $order:expr) => {
        $(#[$meta])*
        $vis async fn $name(
            conn: &mut ::diesel_async::AsyncPgConnection,
            $parent: ::uuid::Uuid,
            page: ::galaxy_core::Page,
        ) -> ::diesel::QueryResult<::galaxy_core::Paged<$row>> {
            let children = || $table::table.filter($table::$parent.eq($parent));
            let total = children().count().get_result(conn).await?;
            let rows = children()
                .order($order)
                .offset(page.offset())
                .limit(page.limit())
                .select(<$row>::as_select())
                .load(conn)
                .await?;
            Ok(::galaxy_core::Paged::new(rows, page, total))
        }
    };
}

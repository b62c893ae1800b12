-- A notification's email route and its mail delivery point at each other.
-- Checking the route → mail link at commit lets submit write the route with
-- its (pre-assigned) mail id and then the mail row, instead of inserting the
-- route, inserting the mail and updating the route again. The mail → route
-- link stays immediate: the route always exists when its mail is written.
ALTER TABLE notification_routes
    ALTER CONSTRAINT notification_routes_mail_delivery_fk DEFERRABLE INITIALLY DEFERRED;

ALTER TABLE notification_routes
    ALTER CONSTRAINT notification_routes_mail_delivery_fk NOT DEFERRABLE;

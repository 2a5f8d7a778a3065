-- The app connects as a role that is neither superuser nor BYPASSRLS, so row-level security
-- binds it (the image's POSTGRES_USER is a superuser and would see every clinic's rows).
CREATE ROLE trichotrack LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD 'trichotrack';
CREATE DATABASE trichotrack OWNER trichotrack;

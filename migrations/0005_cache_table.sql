-- The durable cache level keeps each answer's JSON text exactly as it was
-- rendered (jsonb would reorder the keys of every row object).
ALTER TABLE app.widget_data_cache ALTER COLUMN data TYPE json USING data::json;

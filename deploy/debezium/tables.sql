-- The source tables the Debezium example (postgres-connector.json, firesight.toml) streams.
-- Detections keep FIRMS's column names, so any FIRMS product loads into them as it is
-- (VIIRS rows put bright_ti4/bright_ti5 in brightness/bright_t31, as FIRMS's own archives do,
-- with instrument = 'VIIRS'); weather and sensor readings keep the fields of FireSight's JSON
-- forms. REPLICA IDENTITY DEFAULT is enough: a delete needs only the primary key.
CREATE TABLE fire_detections (
    id          bigserial PRIMARY KEY,
    latitude    double precision NOT NULL,
    longitude   double precision NOT NULL,
    brightness  numeric(6, 2)    NOT NULL,
    scan        real             NOT NULL,
    track       real             NOT NULL,
    acq_date    date             NOT NULL,
    acq_time    varchar(4)       NOT NULL,
    satellite   varchar(16)      NOT NULL,
    instrument  varchar(8),
    confidence  varchar(8)       NOT NULL,
    version     varchar(8),
    bright_t31  numeric(6, 2)    NOT NULL,
    frp         double precision NOT NULL,
    daynight    char(1)          NOT NULL,
    type        smallint
);

CREATE TABLE weather_data (
    id            bigserial PRIMARY KEY,
    station_id    integer      NOT NULL,
    station_name  varchar(80)  NOT NULL,
    date          date         NOT NULL,
    observed_at   timestamptz,
    min_temp_c    real,
    max_temp_c    real,
    rain_mm       real,
    max_gust_kmh  real,
    temp_9am_c    real,
    rh_9am_pct    real,
    wind_9am_kmh  real,
    temp_3pm_c    real,
    rh_3pm_pct    real,
    wind_3pm_kmh  real,
    wind_dir_3pm  varchar(8),
    mslp_3pm_hpa  real
);

CREATE TABLE sensor_readings (
    id             bigserial PRIMARY KEY,
    sensor_id      varchar(64)      NOT NULL,
    latitude       double precision NOT NULL,
    longitude      double precision NOT NULL,
    observed_at    timestamptz      NOT NULL,
    temperature_c  real,
    humidity_pct   real,
    pm25_ugm3      real,
    wind_kmh       real
);

// FireSight's operations map: detections by age and FRP over a time window, incidents with
// their perimeters, clusters and outliers, alerts (the window's and live ones), a clicked
// detection's similar past fires with why they matched, and natural-language search.
// Everything comes from this server: MapLibre and the Natural Earth countries are served
// beside this file, so the page works with no internet.
'use strict';

const HOUR = 3600 * 1000;
const MAX_DETECTIONS = 20000;
const PAGE = 1000;
// GeoJSON pages of detections are streamed by the server, so they may be large.
const FIRE_PAGE = 5000;
const state = {
  key: localStorage.getItem('firesight-api-key') || '',
  span: null,          // [oldest, newest] stored detection, ms
  window: null,        // [from, to] shown, ms
  detections: 0,
  truncated: false,
  selected: null,
  loads: 0,
};
const $ = (id) => document.getElementById(id);
const firesight = (window.firesight = { state, ready: false, errors: [] });

// ---- HTTP --------------------------------------------------------------------------------

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.key) headers['X-API-Key'] = state.key;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401 || response.status === 403) {
    $('auth').hidden = false;
    throw new Error('this server wants an API key with read access');
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const e = body && body.error;
    throw new Error(e ? `${e.field ? e.field + ': ' : ''}${e.reason || e.code}` : `HTTP ${response.status}`);
  }
  return body;
}

function report(error) {
  firesight.errors.push(String(error && error.message || error));
  $('status').textContent = String(error && error.message || error);
  $('status').className = 'error';
}

// ---- Natural Earth background (TopoJSON, decoded here) -----------------------------------

function topologyToGeoJSON(topology, name) {
  const t = topology.transform;
  const arcs = topology.arcs.map((arc) => {
    if (!t) return arc;
    let x = 0, y = 0;
    return arc.map(([dx, dy]) => {
      x += dx; y += dy;
      return [x * t.scale[0] + t.translate[0], y * t.scale[1] + t.translate[1]];
    });
  });
  const arc = (i) => (i >= 0 ? arcs[i] : arcs[~i].slice().reverse());
  // Rings that cross the antimeridian (Fiji, Russia) are unwrapped past ±180° so that they
  // are not drawn across the whole world.
  const ring = (ids) => {
    const points = [];
    ids.forEach((id, k) => { const a = arc(id); points.push(...(k ? a.slice(1) : a)); });
    for (let i = 1; i < points.length; i++) {
      let [x, y] = points[i];
      const previous = points[i - 1][0];
      while (x - previous > 180) x -= 360;
      while (x - previous < -180) x += 360;
      if (x !== points[i][0]) points[i] = [x, y];
    }
    return points;
  };
  const geometry = (g) => {
    if (g.type === 'Polygon') return { type: 'Polygon', coordinates: g.arcs.map(ring) };
    if (g.type === 'MultiPolygon') return { type: 'MultiPolygon', coordinates: g.arcs.map((p) => p.map(ring)) };
    return null;
  };
  const features = topology.objects[name].geometries
    .map((g) => ({ type: 'Feature', properties: g.properties || {}, geometry: geometry(g) }))
    .filter((f) => f.geometry);
  return { type: 'FeatureCollection', features };
}

// ---- The map -------------------------------------------------------------------------------

const empty = () => ({ type: 'FeatureCollection', features: [] });

const map = new maplibregl.Map({
  container: 'map',
  style: {
    version: 8,
    sources: {},
    layers: [{ id: 'sea', type: 'background', paint: { 'background-color': '#b9d3e3' } }],
  },
  center: [134, -25],
  zoom: 3.2,
  attributionControl: { customAttribution: 'Natural Earth · NASA FIRMS' },
});
firesight.map = map;
map.addControl(new maplibregl.NavigationControl(), 'top-right');
map.addControl(new maplibregl.ScaleControl(), 'bottom-right');

const ageColour = ['step', ['get', 'age_h'], '#e0231a', 6, '#f58c1b', 24, '#e8c547'];

function addLayers() {
  map.addSource('countries', { type: 'geojson', data: empty() });
  map.addLayer({ id: 'land', type: 'fill', source: 'countries', paint: { 'fill-color': '#efece3' } });
  map.addLayer({ id: 'borders', type: 'line', source: 'countries', paint: { 'line-color': '#a9a79e', 'line-width': 0.6 } });

  map.addSource('incidents', { type: 'geojson', data: empty() });
  map.addLayer({
    id: 'incident-areas', type: 'fill', source: 'incidents', filter: ['==', ['geometry-type'], 'Polygon'],
    paint: { 'fill-color': ['match', ['get', 'status'], 'active', '#d7301f', '#7d7d7d'], 'fill-opacity': 0.25 },
  });
  map.addLayer({
    id: 'incident-lines', type: 'line', source: 'incidents',
    paint: { 'line-color': ['match', ['get', 'status'], 'active', '#99000d', '#555'], 'line-width': 1.5 },
  });

  map.addSource('clusters', { type: 'geojson', data: empty() });
  map.addLayer({
    id: 'cluster-points', type: 'circle', source: 'clusters', layout: { visibility: 'none' },
    paint: { 'circle-radius': 6, 'circle-color': ['get', 'colour'], 'circle-opacity': 0.55, 'circle-stroke-width': 1, 'circle-stroke-color': '#222' },
  });

  map.addSource('detections', {
    type: 'geojson', data: empty(), cluster: true, clusterRadius: 36, clusterMaxZoom: 8,
    clusterProperties: { min_age: ['min', ['get', 'age_h']], max_frp: ['max', ['get', 'frp_mw']] },
  });
  map.addLayer({
    id: 'detection-groups', type: 'circle', source: 'detections', filter: ['has', 'point_count'],
    paint: {
      'circle-color': ['step', ['get', 'min_age'], '#e0231a', 6, '#f58c1b', 24, '#e8c547'],
      'circle-radius': ['interpolate', ['linear'], ['get', 'point_count'], 2, 8, 100, 16, 2000, 28],
      'circle-opacity': 0.8, 'circle-stroke-width': 1, 'circle-stroke-color': '#5a1a00',
    },
  });
  map.addLayer({
    id: 'detection-points', type: 'circle', source: 'detections', filter: ['!', ['has', 'point_count']],
    paint: {
      'circle-color': ageColour,
      'circle-radius': ['interpolate', ['linear'], ['get', 'frp_mw'], 0, 4, 100, 7, 1000, 13],
      'circle-stroke-width': 0.8, 'circle-stroke-color': '#5a1a00',
    },
  });

  map.addSource('outliers', { type: 'geojson', data: empty() });
  map.addLayer({
    id: 'outlier-rings', type: 'circle', source: 'outliers', layout: { visibility: 'none' },
    paint: { 'circle-radius': 11, 'circle-color': 'rgba(0,0,0,0)', 'circle-stroke-width': 2.5, 'circle-stroke-color': '#6a1b9a' },
  });

  map.addSource('similar-links', { type: 'geojson', data: empty() });
  map.addLayer({ id: 'similar-links', type: 'line', source: 'similar-links', paint: { 'line-color': '#1f5fbf', 'line-width': 1.2, 'line-dasharray': [2, 2] } });
  map.addSource('similar', { type: 'geojson', data: empty() });
  map.addLayer({
    id: 'similar-points', type: 'circle', source: 'similar',
    paint: { 'circle-radius': 7, 'circle-color': '#1f5fbf', 'circle-stroke-width': 2, 'circle-stroke-color': '#fff' },
  });
  map.addSource('selected', { type: 'geojson', data: empty() });
  map.addLayer({
    id: 'selected-point', type: 'circle', source: 'selected',
    paint: { 'circle-radius': 10, 'circle-color': 'rgba(0,0,0,0)', 'circle-stroke-width': 3, 'circle-stroke-color': '#111' },
  });
  map.addSource('results', { type: 'geojson', data: empty() });
  map.addLayer({
    id: 'result-points', type: 'circle', source: 'results',
    paint: { 'circle-radius': 7, 'circle-color': '#2e7d32', 'circle-stroke-width': 2, 'circle-stroke-color': '#fff' },
  });
}

const layersOf = {
  detections: ['detection-groups', 'detection-points'],
  incidents: ['incident-areas', 'incident-lines'],
  clusters: ['cluster-points'],
  outliers: ['outlier-rings'],
};

// ---- Loading the window --------------------------------------------------------------------

function iso(ms) { return new Date(ms).toISOString().replace('.000Z', 'Z'); }
function shortTime(ms) { return iso(ms).replace('T', ' ').replace(':00Z', ' UTC'); }
function windowQuery() { return `from=${iso(state.window[0])}&to=${iso(state.window[1])}`; }

async function loadDetections(load) {
  const features = [];
  let cursor = null;
  state.truncated = false;
  do {
    const page = await api(`/v1/fires?f=geojson&limit=${FIRE_PAGE}&${windowQuery()}${cursor ? '&cursor=' + cursor : ''}`);
    if (load !== state.loads) return;
    features.push(...page.features);
    cursor = page.next_cursor;
    if (features.length >= MAX_DETECTIONS && cursor) { state.truncated = true; break; }
  } while (cursor);
  const end = state.window[1];
  for (const f of features) {
    f.properties.age_h = (end - Date.parse(f.properties.detection_time)) / HOUR;
  }
  state.detections = features.length;
  map.getSource('detections').setData({ type: 'FeatureCollection', features });
  $('count-detections').textContent = `${features.length}${state.truncated ? ' (newest only)' : ''}`;
}

async function loadIncidents(load) {
  const page = await api(`/v1/incidents?f=geojson&limit=1000&${windowQuery()}`);
  if (load !== state.loads) return;
  map.getSource('incidents').setData(page);
  $('count-incidents').textContent = `${page.total}`;
}

// The log is oldest first: read the window's pages and keep the newest 200.
async function loadAlerts(load) {
  let newest = [];
  let cursor = null;
  let pages = 0;
  do {
    const page = await api(`/v1/alerts?f=geojson&limit=${PAGE}&${windowQuery()}${cursor ? '&cursor=' + cursor : ''}`);
    if (load !== state.loads) return;
    newest = newest.concat(page.features).slice(-200);
    cursor = page.next_cursor;
  } while (cursor && ++pages < 50);
  const list = $('alerts');
  list.querySelectorAll('li:not(.live-item)').forEach((li) => li.remove());
  for (const f of newest.reverse()) list.appendChild(alertItem(f.properties, false));
}

function alertItem(a, live) {
  const li = document.createElement('li');
  li.dataset.id = a.id;
  if (live) li.className = 'live-item';
  li.innerHTML = `${live ? '<span class="live">live</span> ' : ''}<span class="kind"></span> <span class="when"></span><div class="why"></div>`;
  li.querySelector('.kind').textContent = a.kind.replace('_', ' ');
  li.querySelector('.when').textContent = shortTime(a.time_ms);
  li.querySelector('.why').textContent = a.reason;
  li.addEventListener('click', () => map.flyTo({ center: [a.centroid.longitude, a.centroid.latitude], zoom: 9 }));
  return li;
}

const palette = ['#1b9e77', '#d95f02', '#7570b3', '#e7298a', '#66a61e', '#e6ab02', '#a6761d', '#1f78b4'];

async function loadPatterns(load) {
  const want = (name) => document.querySelector(`[data-layer=${name}]`).checked;
  if (want('clusters')) {
    try {
      const found = await api(`/v1/clusters?f=geojson&${windowQuery()}`);
      if (load !== state.loads) return;
      const points = [];
      found.features.forEach((c, i) => {
        for (const xy of c.geometry.coordinates) {
          points.push({ type: 'Feature', geometry: { type: 'Point', coordinates: xy },
            properties: { cluster: c.id, size: c.properties.size, colour: palette[i % palette.length] } });
        }
      });
      map.getSource('clusters').setData({ type: 'FeatureCollection', features: points });
      $('count-clusters').textContent = `${found.total_clusters} (noise ${found.noise})`;
    } catch (e) { $('count-clusters').textContent = e.message; }
  }
  if (want('outliers')) {
    try {
      const found = await api(`/v1/outliers?f=geojson&limit=50&${windowQuery()}`);
      if (load !== state.loads) return;
      map.getSource('outliers').setData(found);
      $('count-outliers').textContent = `${found.features.length}`;
    } catch (e) { $('count-outliers').textContent = e.message; }
  }
}

async function loadWindow() {
  const load = ++state.loads;
  $('status').className = '';
  $('status').textContent = 'loading…';
  $('time-label').textContent = `${shortTime(state.window[1])} (${(state.window[1] - state.window[0]) / HOUR} h)`;
  try {
    await Promise.all([loadDetections(load), loadIncidents(load), loadAlerts(load).catch(() => {})]);
    await loadPatterns(load);
    if (load !== state.loads) return;
    $('status').textContent = `${state.detections} detections`;
    map.once('idle', () => {
      if (load !== state.loads) return;
      if (!firesight.ready) performance.mark('firesight-detections-rendered');
      firesight.ready = true;
      firesight.loaded = load;
    });
    map.triggerRepaint();
  } catch (e) { report(e); }
}

// ---- A clicked detection and its similar past fires ---------------------------------------

function row(dl, name, value) {
  if (value === undefined || value === null || value === '') return;
  const dt = document.createElement('dt'); dt.textContent = name;
  const dd = document.createElement('dd'); dd.textContent = value;
  dl.append(dt, dd);
}

async function select(id) {
  state.selected = id;
  $('details').hidden = false;
  $('similar').innerHTML = '';
  try {
    const [event, similar] = await Promise.all([
      api(`/v1/fires/${encodeURIComponent(id)}`),
      api(`/v1/fires/${encodeURIComponent(id)}/similar?k=10&explain=true&f=geojson`),
    ]);
    if (state.selected !== id) return;
    const dl = $('record'); dl.innerHTML = '';
    const fire = event.fire_characteristics, w = event.weather_conditions;
    row(dl, 'Detected', shortTime(event.detection_time));
    row(dl, 'Satellite', `${event.source.satellite} ${event.source.instrument}`);
    row(dl, 'Place', `${event.location.latitude.toFixed(4)}, ${event.location.longitude.toFixed(4)}`);
    row(dl, 'FRP', `${fire.frp_mw} MW`);
    row(dl, 'Confidence', fire.confidence);
    row(dl, 'Weather', w ? `${w.station_name} (${w.distance_km.toFixed(0)} km, ${w.observation_date}): max ${w.max_temp_c ?? '–'} °C, rain ${w.rain_mm ?? '–'} mm, gust ${w.max_gust_kmh ?? '–'} km/h` : (event.weather_status || 'none').replace(/_/g, ' '));
    const fw = w && w.fire_weather;
    if (fw) row(dl, 'Fire weather', `FWI ${fw.fwi}, ${fw.danger_class.replace(/_/g, ' ')} danger (ISI ${fw.isi}, BUI ${fw.bui}; FFMC ${fw.ffmc}, DMC ${fw.dmc}, DC ${fw.dc})`);
    if (event.correlation_id) {
      row(dl, 'Incident', event.correlation_id);
      const dd = dl.lastElementChild;
      dd.className = 'link';
      dd.addEventListener('click', () => showIncident(event.correlation_id));
    }
    for (const p of event.ml_predictions || []) row(dl, p.name, p.value.toFixed(3));
    const anomalies = event.impact_assessment && event.impact_assessment.anomalies;
    if (anomalies && anomalies.length) row(dl, 'Anomalies', anomalies.join(', '));

    const here = [event.location.longitude, event.location.latitude];
    map.getSource('selected').setData({ type: 'FeatureCollection', features: [{ type: 'Feature', geometry: { type: 'Point', coordinates: here }, properties: {} }] });
    map.getSource('similar').setData(similar);
    map.getSource('similar-links').setData({
      type: 'FeatureCollection',
      features: similar.features.map((f) => ({ type: 'Feature', properties: {}, geometry: { type: 'LineString', coordinates: [here, f.geometry.coordinates] } })),
    });
    const list = $('similar');
    for (const f of similar.features) {
      const p = f.properties;
      const li = document.createElement('li');
      li.dataset.id = p.event_id;
      li.innerHTML = '<span class="what"></span><div class="why"></div>';
      li.querySelector('.what').textContent = `${p.detection_time.slice(0, 10)} · ${p.satellite} · ${p.frp_mw} MW · distance ${p.distance.toFixed(3)}`;
      const x = p.explain;
      if (x) {
        const apart = `${x.distance_km.toFixed(0)} km, ${Math.abs(x.hours_apart / 24).toFixed(0)} days ${x.hours_apart < 0 ? 'before' : 'after'}`;
        const differs = x.differs.map((d) => `${d.feature} ${(d.share * 100).toFixed(0)}%`).join(', ');
        li.querySelector('.why').textContent = `${apart}. Alike in: ${x.shared.join(', ') || '—'}. Differs in: ${differs || '—'}`;
      }
      li.addEventListener('click', () => map.flyTo({ center: f.geometry.coordinates, zoom: 10 }));
      list.appendChild(li);
    }
    if (similar.features.length) {
      const bounds = new maplibregl.LngLatBounds(here, here);
      similar.features.forEach((f) => bounds.extend(f.geometry.coordinates));
      map.fitBounds(bounds, { padding: 80, maxZoom: 9, duration: 0 });
    }
    $('details').scrollIntoView();
    firesight.similarShown = similar.features.length;
  } catch (e) { report(e); }
}

// An incident by id (a merged one answers with the incident it is part of now), framed.
async function showIncident(id) {
  try {
    let incident = await api(`/v1/incidents/${encodeURIComponent(id)}`);
    if (incident.merged_into) incident = await api(`/v1/incidents/${encodeURIComponent(incident.merged_into)}`);
    const [w, s, e, n] = incident.bbox;
    map.fitBounds([[w, s], [e, n]], { padding: 100, maxZoom: 12, duration: 0 });
    $('status').textContent = `${incident.id}: ${incident.status}, ${incident.detections} detections, ${incident.area_km2} km²`;
  } catch (e) { report(e); }
}

// ---- Natural-language search ---------------------------------------------------------------

async function search(query) {
  $('results-section').hidden = false;
  $('results').innerHTML = '';
  try {
    const answer = await api('/v1/search', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ query, k: 10 }),
    });
    const u = answer.understood || {};
    const read = [
      (u.years || []).join(', '), u.date, (u.counties || []).join(', '), u.region,
      u.min_acres ? `≥ ${u.min_acres} acres` : '',
    ].filter(Boolean).join(' · ');
    $('understood').textContent = read ? `Understood: ${read}` : '';
    const placed = [];
    for (const hit of answer.hits) {
      const li = document.createElement('li');
      li.dataset.id = hit.id;
      li.innerHTML = '<span class="what"></span><div class="why"></div>';
      li.querySelector('.what').textContent = hit.title;
      li.querySelector('.why').textContent = [hit.date, hit.acres ? `${hit.acres} acres` : '', (hit.counties || []).join(', ')].filter(Boolean).join(' · ');
      if (hit.latitude != null && hit.longitude != null) {
        const xy = [hit.longitude, hit.latitude];
        placed.push({ type: 'Feature', geometry: { type: 'Point', coordinates: xy }, properties: { id: hit.id, title: hit.title } });
        li.addEventListener('click', () => map.flyTo({ center: xy, zoom: 9 }));
      }
      $('results').appendChild(li);
    }
    map.getSource('results').setData({ type: 'FeatureCollection', features: placed });
    if (placed.length) {
      const bounds = new maplibregl.LngLatBounds(placed[0].geometry.coordinates, placed[0].geometry.coordinates);
      placed.forEach((f) => bounds.extend(f.geometry.coordinates));
      map.fitBounds(bounds, { padding: 80, maxZoom: 6, duration: 0 });
    }
    $('results-section').scrollIntoView();
    firesight.resultsShown = answer.hits.length;
  } catch (e) {
    const li = document.createElement('li'); li.className = 'error'; li.textContent = e.message;
    $('results').appendChild(li);
  }
}

// ---- Live alerts (Server-Sent Events read with fetch, so an API key can be sent) -----------

async function followAlerts() {
  for (;;) {
    try {
      const headers = state.key ? { 'X-API-Key': state.key } : {};
      const response = await fetch('/v1/alerts/stream', { headers });
      if (!response.ok || !response.body) throw new Error(`alerts stream: HTTP ${response.status}`);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
          const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
          if (data) $('alerts').prepend(alertItem(JSON.parse(data), true));
        }
      }
    } catch (e) { /* reconnect below */ }
    await new Promise((r) => setTimeout(r, 5000));
  }
}

// ---- Wiring --------------------------------------------------------------------------------

function setWindowFromControls() {
  const end = Math.min(state.span[0] + Number($('time-end').value) * HOUR, state.span[1]);
  const hours = Number($('time-span').value);
  state.window = [end - hours * HOUR, end];
}

let debounce = null;
function controlsChanged() {
  setWindowFromControls();
  $('time-label').textContent = `${shortTime(state.window[1])} (${(state.window[1] - state.window[0]) / HOUR} h)`;
  clearTimeout(debounce);
  debounce = setTimeout(loadWindow, 250);
}

let following = false;
async function begin() {
  try {
    const fires = await api('/ogc/collections/fires');
    const [oldest, newest] = fires.extent.temporal.interval[0];
    if (!oldest) { $('status').textContent = 'no detections stored yet'; firesight.ready = true; return; }
    state.span = [Date.parse(oldest), Date.parse(newest)];
    const hours = Math.ceil((state.span[1] - state.span[0]) / HOUR);
    $('time-end').max = String(hours);
    $('time-end').value = String(hours);
    const [w, s, e, n] = fires.extent.spatial.bbox[0];
    if (e - w < 300) map.fitBounds([[w, s], [e, n]], { padding: 30, duration: 0 });
  } catch (e) { report(e); return; }
  setWindowFromControls();
  await loadWindow();
  if (!following) { following = true; followAlerts(); }
}

map.on('load', () => {
  addLayers();
  fetch('/map/vendor/world-atlas-2.0.2/countries-50m.json')
    .then((r) => r.json())
    .then((topology) => map.getSource('countries').setData(topologyToGeoJSON(topology, 'countries')))
    .catch(report);
  begin();
});
map.on('click', 'detection-points', (e) => select(e.features[0].properties.event_id));
map.on('click', 'detection-groups', async (e) => {
  const source = map.getSource('detections');
  const zoom = await source.getClusterExpansionZoom(e.features[0].properties.cluster_id);
  map.easeTo({ center: e.features[0].geometry.coordinates, zoom });
});
for (const layer of ['detection-points', 'detection-groups', 'similar-points', 'result-points']) {
  map.on('mouseenter', layer, () => { map.getCanvas().style.cursor = 'pointer'; });
  map.on('mouseleave', layer, () => { map.getCanvas().style.cursor = ''; });
}
map.on('click', 'similar-points', (e) => select(e.features[0].properties.event_id));
$('time-end').addEventListener('input', controlsChanged);
$('time-span').addEventListener('change', controlsChanged);
document.querySelectorAll('[data-layer]').forEach((box) => box.addEventListener('change', () => {
  for (const id of layersOf[box.dataset.layer]) map.setLayoutProperty(id, 'visibility', box.checked ? 'visible' : 'none');
  if (box.checked && (box.dataset.layer === 'clusters' || box.dataset.layer === 'outliers')) loadPatterns(state.loads);
}));
$('search-form').addEventListener('submit', (e) => { e.preventDefault(); const q = $('search').value.trim(); if (q) search(q); });
$('api-key-save').addEventListener('click', () => {
  state.key = $('api-key').value.trim();
  localStorage.setItem('firesight-api-key', state.key);
  $('auth').hidden = true;
  begin();
});
firesight.select = select;
firesight.search = search;

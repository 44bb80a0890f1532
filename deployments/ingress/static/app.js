// The web page of the image-to-video service. Plain JavaScript, no build step; it only calls
// the public HTTP API: POST /v1/videos, GET /v1/videos[/{id}[/content]], POST
// /v1/videos/{id}/remix and POST /v1/sessions/{id}/messages.
"use strict";

const STRINGS = {
  en: {
    title: "Image to video",
    tagline: "A picture and a sentence in any language become a short video.",
    newVideo: "New video",
    dropHint: "Drop a picture here or click to choose one",
    instruction: "Instruction",
    instructionPlaceholder: "e.g. show this cup rotating / 展示这个杯子旋转",
    advanced: "Advanced settings",
    size: "Size (W×H)",
    numFrames: "Frames",
    steps: "Denoising steps",
    guidance: "Guidance scale",
    fps: "Frames per second",
    seed: "Seed",
    category: "Category",
    auto: "automatic",
    cat_person: "person",
    cat_animal: "animal",
    cat_landscape: "landscape",
    cat_still_life: "still life",
    generate: "Generate",
    video: "Video",
    englishPrompt: "English prompt",
    negativePrompt: "Negative prompt",
    parameters: "Parameters",
    download: "Download MP4",
    apiKeyPlaceholder: "API key (if the service asks)",
    conversation: "Conversation",
    chatHint:
      'Ask about the picture above; the service may ask back before it makes a video. Follow-ups like "slower" change the last video.',
    session: "Session",
    newSession: "New conversation",
    chatPlaceholder: "e.g. 这张图里的水是怎么循环的?",
    send: "Send",
    history: "History",
    searchPlaceholder: "words in the instruction or prompt",
    anyStatus: "any status",
    anyCategory: "any category",
    st_queued: "queued",
    st_in_progress: "in progress",
    st_completed: "completed",
    st_failed: "failed",
    from: "from",
    to: "to",
    thisSession: "this session only",
    search: "Search",
    more: "More",
    noResults: "Nothing found.",
    needPicture: "Choose a picture first.",
    you: "You",
    service: "Service",
    proposed: "Proposed video",
    madeVideo: "Making video {id}",
    remixOf: "Changing {source} → {id}",
    failedBecause: "Failed: {message} ({code})",
    notRunning: "The service does not answer at {url}.",
    p_width: "width",
    p_height: "height",
    p_num_frames: "frames",
    p_num_inference_steps: "steps",
    p_guidance_scale: "guidance",
    p_fps: "fps",
    p_seed: "seed",
    s_table: "category table",
    s_user: "you",
    s_default: "default",
    s_random: "random",
    s_seconds: "from seconds",
    s_size: "from size",
    s_picture: "picture",
    s_plan: "plan",
    s_previous: "earlier video",
    s_clamped: "limited",
  },
  zh: {
    title: "图片生成视频",
    tagline: "一张图片加一句话（中文或英文），生成一段短视频。",
    newVideo: "新视频",
    dropHint: "把图片拖到这里，或点击选择图片",
    instruction: "指令",
    instructionPlaceholder: "例如：展示这个杯子旋转",
    advanced: "高级设置",
    size: "尺寸（宽×高）",
    numFrames: "帧数",
    steps: "去噪步数",
    guidance: "引导系数",
    fps: "每秒帧数",
    seed: "随机种子",
    category: "类别",
    auto: "自动",
    cat_person: "人物",
    cat_animal: "动物",
    cat_landscape: "风景",
    cat_still_life: "静物",
    generate: "生成",
    video: "视频",
    englishPrompt: "英文提示词",
    negativePrompt: "反向提示词",
    parameters: "参数",
    download: "下载 MP4",
    apiKeyPlaceholder: "API 密钥（服务要求时填写）",
    conversation: "对话",
    chatHint: "就上面的图片提问；服务可能先反问再生成视频。“慢一点”之类的后续指令会修改上一个视频。",
    session: "会话",
    newSession: "新对话",
    chatPlaceholder: "例如：这张图里的水是怎么循环的?",
    send: "发送",
    history: "历史记录",
    searchPlaceholder: "指令或提示词中的词语",
    anyStatus: "任意状态",
    anyCategory: "任意类别",
    st_queued: "排队中",
    st_in_progress: "生成中",
    st_completed: "已完成",
    st_failed: "失败",
    from: "从",
    to: "到",
    thisSession: "仅本会话",
    search: "搜索",
    more: "更多",
    noResults: "没有找到。",
    needPicture: "请先选择一张图片。",
    you: "我",
    service: "服务",
    proposed: "拟生成的视频",
    madeVideo: "正在生成视频 {id}",
    remixOf: "修改 {source} → {id}",
    failedBecause: "失败：{message}（{code}）",
    notRunning: "服务没有响应：{url}",
    p_width: "宽",
    p_height: "高",
    p_num_frames: "帧数",
    p_num_inference_steps: "步数",
    p_guidance_scale: "引导系数",
    p_fps: "帧率",
    p_seed: "种子",
    s_table: "类别表",
    s_user: "用户指定",
    s_default: "默认",
    s_random: "随机",
    s_seconds: "按时长",
    s_size: "按尺寸",
    s_picture: "按图片",
    s_plan: "规划",
    s_previous: "上一个视频",
    s_clamped: "已限制",
  },
};

const $ = (selector) => document.querySelector(selector);
const FINAL = ["completed", "failed"];

const state = {
  lang: pickLanguage(),
  picture: null, // the chosen File
  pictureSession: null, // the session the picture was last sent to
  session: sessionStorage.getItem("i2v-session") || newSessionId(),
  current: null, // the Video shown in the job pane
  pollToken: 0,
  stream: null, // the AbortController of the progress stream being read
  lastVideoId: null, // the conversation's last video: follow-ups remix it
  pendingQuestion: false,
  historyAfter: null,
  historyToken: 0,
};

function pickLanguage() {
  const saved = localStorage.getItem("i2v-lang");
  if (saved === "en" || saved === "zh") return saved;
  return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
}

function t(key, vars = {}) {
  const text = STRINGS[state.lang][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

function newSessionId() {
  const id = "web-" + Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
  sessionStorage.setItem("i2v-session", id);
  return id;
}

// --- language --------------------------------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  $("#lang").textContent = state.lang === "zh" ? "English" : "中文";
  if (state.current) showJob(state.current);
  for (const el of document.querySelectorAll("[data-status]")) {
    el.textContent = t("st_" + el.dataset.status);
  }
}

// --- the HTTP API ----------------------------------------------------------------------

class ApiError extends Error {
  constructor(message, code, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

// The API key a person typed (kept in this browser's storage), sent as a bearer header.
function authHeaders() {
  const key = localStorage.getItem("i2v-api-key");
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: { ...(options.headers || {}), ...authHeaders() } });
  } catch (error) {
    throw new ApiError(t("notRunning", { url: location.origin }), "connection_error", 0);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = body.error || {};
    throw new ApiError(error.message || `HTTP ${response.status}`, error.code, response.status);
  }
  return { body, headers: response.headers };
}

function showAlert(error) {
  const alert = $("#alert");
  if (!error) {
    alert.hidden = true;
    return;
  }
  alert.textContent = error.code ? `${error.message} (${error.code})` : error.message;
  alert.hidden = false;
}

async function guarded(action) {
  showAlert(null);
  try {
    await action();
  } catch (error) {
    showAlert(error);
  }
}

// --- the picture -----------------------------------------------------------------------

function setPicture(file) {
  if (!file) return;
  state.picture = file;
  state.pictureSession = null;
  const preview = $("#preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  $("#drop-hint").hidden = true;
}

function setupPicture() {
  const drop = $("#drop");
  $("#picture").addEventListener("change", (event) => setPicture(event.target.files[0]));
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) setPicture(file);
  });
}

// --- one job: plan, progress, video ------------------------------------------------------

function showJob(video) {
  state.current = video;
  $("#job-pane").hidden = false;
  $("#job-id").textContent = video.id;
  const plan = video.plan || {};
  $("#plan-category").textContent = video.category ? t("cat_" + video.category) : "";
  $("#plan-category").dataset.value = video.category || "";
  $("#plan-prompt").textContent = plan.prompt || "";
  $("#plan-negative").textContent = plan.negative_prompt || "";
  const list = $("#plan-params");
  list.replaceChildren();
  const sources = plan.param_sources || {};
  for (const [name, value] of Object.entries(plan.params || {})) {
    const item = document.createElement("li");
    item.dataset.param = name;
    const source = sources[name]
      ? " (" + sources[name].split(",").map((s) => ("s_" + s in STRINGS.en ? t("s_" + s) : s)).join(", ") + ")"
      : "";
    item.textContent = `${t("p_" + name)}: ${value}${source}`;
    list.append(item);
  }
  $("#progress").value = video.progress;
  $("#progress-text").textContent = `${video.progress}%`;
  $("#status").textContent = t("st_" + video.status);
  $("#status").dataset.status = video.status;
  const error = $("#job-error");
  error.hidden = video.status !== "failed";
  if (video.status === "failed") {
    const detail = video.error || {};
    error.textContent = t("failedBecause", { message: detail.message, code: detail.code });
  }
  const result = $("#result");
  const player = $("#video");
  if (video.status === "completed") {
    if (player.dataset.videoId !== video.id) {
      player.dataset.videoId = video.id;
      contentUrl(video.id, "video").then((url) => {
        player.src = url;
        $("#download").href = url;
        player.load();
        player.play().catch(() => {});
      });
    }
    $("#download").download = `${video.id}.mp4`;
    result.hidden = false;
  } else {
    result.hidden = true;
  }
}

// The job's progress stream (Server-Sent Events read through fetch, so the API key header goes
// along): shows each status and progress as it happens and resolves with the final Video, or
// with null when the stream is refused or breaks (the caller polls instead).
async function streamJob(video, token) {
  const controller = new AbortController();
  state.stream = controller;
  let current = video;
  try {
    const response = await fetch(`/v1/videos/${encodeURIComponent(video.id)}/events`, {
      headers: { Accept: "text/event-stream", ...authHeaders() },
      signal: controller.signal,
    });
    if (!response.ok || !response.body) return null;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let name = "";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done || token !== state.pollToken) return null;
      buffer += value;
      const lines = buffer.split(/\r?\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          const body = data.length ? JSON.parse(data.join("\n")) : null;
          const event = name;
          name = "";
          data = [];
          if (!body) continue;
          if (event === "video") return body;
          if (event === "error") return null;
          current = { ...current, status: body.status, progress: body.progress };
          showJob(current);
        } else if (line.startsWith("event:")) {
          name = line.slice(6).trim();
        } else if (line.startsWith("data:")) {
          data.push(line.slice(5).replace(/^ /, ""));
        }
      }
    }
  } catch (error) {
    return null;
  } finally {
    controller.abort();
    if (state.stream === controller) state.stream = null;
  }
}

async function follow(video) {
  const token = ++state.pollToken;
  if (state.stream) state.stream.abort(); // the job shown before
  showJob(video);
  if (!FINAL.includes(video.status)) {
    const final = await streamJob(video, token);
    if (token !== state.pollToken) return final || video; // another job is shown now
    if (final) {
      showJob(final);
      loadHistory(true);
      return final;
    }
    video = state.current && state.current.id === video.id ? state.current : video;
  }
  let wait = 500;
  while (!FINAL.includes(video.status)) {
    await new Promise((resolve) => setTimeout(resolve, wait));
    if (token !== state.pollToken) return video; // another job is shown now
    try {
      const { body, headers } = await api(`/v1/videos/${encodeURIComponent(video.id)}`);
      video = body;
      const after = Number(headers.get("openai-poll-after-ms"));
      wait = Math.min(Math.max(after || 1000, 100), 2000);
    } catch (error) {
      showAlert(error);
      wait = 2000;
      continue;
    }
    if (token !== state.pollToken) return video;
    showJob(video);
  }
  loadHistory(true);
  return video;
}

function advancedFields(form) {
  const fields = {};
  for (const el of form.querySelectorAll("#advanced [name]")) {
    if (el.value.trim() !== "") fields[el.name] = el.value.trim();
  }
  return fields;
}

async function createVideo(event) {
  event.preventDefault();
  await guarded(async () => {
    if (!state.picture) throw new ApiError(t("needPicture"));
    const data = new FormData();
    data.append("prompt", $("#instruction").value);
    data.append("input_reference", state.picture, state.picture.name);
    data.append("session_id", state.session);
    for (const [name, value] of Object.entries(advancedFields(event.target))) {
      data.append(name, value);
    }
    $("#submit").disabled = true;
    try {
      const { body } = await api("/v1/videos", { method: "POST", body: data });
      state.pictureSession = state.session;
      loadHistory(true);
      follow(body);
    } finally {
      $("#submit").disabled = false;
    }
  });
}

// --- the conversation --------------------------------------------------------------------

function say(role, text, extra) {
  const item = document.createElement("li");
  item.className = role;
  const who = document.createElement("strong");
  who.textContent = role === "user" ? t("you") : t("service");
  who.dataset.i18n = role === "user" ? "you" : "service";
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  item.append(who, " ", body);
  if (extra) {
    const note = document.createElement("div");
    note.className = "note";
    note.textContent = extra;
    item.append(note);
  }
  $("#chat-log").append(item);
  item.scrollIntoView({ block: "nearest" });
  return item;
}

async function sendMessage(event) {
  event.preventDefault();
  const input = $("#chat-input");
  const text = input.value.trim();
  if (!text) return;
  await guarded(async () => {
    $("#chat-send").disabled = true;
    try {
      say("user", text);
      input.value = "";
      if (state.lastVideoId && !state.pendingQuestion) {
        await remixLast(text);
      } else {
        await converse(text);
      }
    } finally {
      $("#chat-send").disabled = false;
    }
  });
}

async function converse(text) {
  const data = new FormData();
  data.append("text", text);
  if (state.picture && state.pictureSession !== state.session) {
    data.append("input_reference", state.picture, state.picture.name);
  }
  const path = `/v1/sessions/${encodeURIComponent(state.session)}/messages`;
  const { body } = await api(path, { method: "POST", body: data });
  state.pictureSession = state.session;
  if (body.type === "question") {
    state.pendingQuestion = true;
    const item = say("assistant", body.question, body.proposed_prompt ? `${t("proposed")}: ${body.proposed_prompt}` : "");
    item.classList.add("question");
    return;
  }
  state.pendingQuestion = false;
  state.lastVideoId = body.video.id;
  say("assistant", t("madeVideo", { id: body.video.id }), body.video.plan?.prompt);
  loadHistory(true);
  follow(body.video);
}

async function remixLast(text) {
  const source = state.lastVideoId;
  const { body } = await api(`/v1/videos/${encodeURIComponent(source)}/remix`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: text }),
  });
  state.lastVideoId = body.id;
  say("assistant", t("remixOf", { source, id: body.id }), body.plan?.prompt);
  loadHistory(true);
  follow(body);
}

function resetSession() {
  state.session = newSessionId();
  state.pictureSession = null;
  state.lastVideoId = null;
  state.pendingQuestion = false;
  $("#session-id").textContent = state.session;
  $("#chat-log").replaceChildren();
}

// --- history -----------------------------------------------------------------------------

function historyQuery() {
  const params = new URLSearchParams({ limit: "20" });
  const q = $("#history-q").value.trim();
  if (q) params.set("q", q);
  if ($("#history-status").value) params.set("status", $("#history-status").value);
  if ($("#history-category").value) params.set("category", $("#history-category").value);
  if ($("#history-from").value) {
    params.set("created_after", String(Math.floor(new Date(`${$("#history-from").value}T00:00:00`) / 1000)));
  }
  if ($("#history-to").value) {
    params.set("created_before", String(Math.floor(new Date(`${$("#history-to").value}T23:59:59`) / 1000)));
  }
  if ($("#history-session").checked) params.set("session_id", state.session);
  return params;
}

async function loadHistory(fresh) {
  const token = ++state.historyToken; // only the latest request fills the list
  const list = $("#history");
  list.setAttribute("aria-busy", "true");
  const params = historyQuery();
  if (!fresh && state.historyAfter) params.set("after", state.historyAfter);
  let page;
  try {
    ({ body: page } = await api(`/v1/videos?${params}`));
  } catch (error) {
    if (token === state.historyToken) list.setAttribute("aria-busy", "false");
    showAlert(error);
    return;
  }
  if (token !== state.historyToken) return;
  if (fresh) list.replaceChildren();
  for (const video of page.data) list.append(historyItem(video));
  if (fresh && page.data.length === 0) {
    const empty = document.createElement("li");
    empty.className = "empty";
    empty.dataset.i18n = "noResults";
    empty.textContent = t("noResults");
    list.append(empty);
  }
  state.historyAfter = page.last_id;
  $("#history-more").hidden = !page.has_more;
  list.setAttribute("aria-busy", "false");
}

function historyItem(video) {
  const item = document.createElement("li");
  item.dataset.videoId = video.id;
  if (video.status === "completed") {
    const thumb = document.createElement("img");
    thumb.loading = "lazy";
    thumb.alt = "";
    contentUrl(video.id, "thumbnail").then((url) => { thumb.src = url; });
    item.append(thumb);
  }
  const text = document.createElement("div");
  const title = document.createElement("div");
  title.className = "instruction";
  title.textContent = video.prompt || "";
  const prompt = document.createElement("div");
  prompt.className = "prompt";
  prompt.textContent = video.plan?.prompt || "";
  const meta = document.createElement("div");
  meta.className = "meta";
  const status = document.createElement("span");
  status.dataset.status = video.status;
  status.textContent = t("st_" + video.status);
  const when = new Date(video.created_at * 1000).toLocaleString(state.lang === "zh" ? "zh-CN" : "en");
  const category = document.createElement("span");
  if (video.category) {
    category.dataset.i18n = "cat_" + video.category;
    category.textContent = t("cat_" + video.category);
  }
  meta.append(status, " · ", category, ` · ${when} · ${video.id}`);
  text.append(title, prompt, meta);
  item.append(text);
  item.addEventListener("click", () => guarded(async () => {
    const { body } = await api(`/v1/videos/${encodeURIComponent(video.id)}`);
    follow(body);
    $("#job-pane").scrollIntoView({ block: "start" });
  }));
  return item;
}

// Media elements cannot send headers: with a key, content is fetched and shown from a blob.
async function contentUrl(id, variant) {
  const url = `/v1/videos/${encodeURIComponent(id)}/content?variant=${variant}`;
  if (!localStorage.getItem("i2v-api-key")) return url;
  const response = await fetch(url, { headers: authHeaders() });
  return response.ok ? URL.createObjectURL(await response.blob()) : url;
}

// --- start -------------------------------------------------------------------------------

function setupApiKey() {
  const keyInput = $("#api-key");
  keyInput.value = localStorage.getItem("i2v-api-key") || "";
  keyInput.addEventListener("change", () => {
    const key = keyInput.value.trim();
    if (key) localStorage.setItem("i2v-api-key", key);
    else localStorage.removeItem("i2v-api-key");
    loadHistory(true);
  });
}

function start() {
  setupPicture();
  setupApiKey();
  $("#session-id").textContent = state.session;
  $("#lang").addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem("i2v-lang", state.lang);
    applyLanguage();
  });
  $("#create-form").addEventListener("submit", createVideo);
  $("#chat-form").addEventListener("submit", sendMessage);
  $("#new-session").addEventListener("click", resetSession);
  $("#history-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadHistory(true);
  });
  $("#history-more").addEventListener("click", () => loadHistory(false));
  applyLanguage();
  loadHistory(true);
}

start();

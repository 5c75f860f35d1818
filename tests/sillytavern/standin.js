// A stand-in for SillyTavern's page, for the extension's browser tests (not
// shipped). It mirrors what SillyTavern 1.12 does behind getContext(): an
// EventEmitter whose emit awaits each listener in turn; generate() emits
// GENERATION_STARTED, reads and clears #send_textarea (adding it as the
// user's message unless automatic_trigger), then streams: one
// STREAM_TOKEN_RECEIVED per token with the cumulative text, or answers in one
// piece; GENERATION_ENDED comes before MESSAGE_RECEIVED; stopGeneration()
// aborts, emits GENERATION_STOPPED and generate() resolves with nothing;
// openCharacterChat() switches to (or starts) a chat file of the character.
// Like SillyTavern, generate() itself never refuses to run while another
// generation runs: only the user's Send is ignored then (is_send_press);
// the Stop button (#mes_stop) shows while a generation runs and hiding it
// emits GENERATION_ENDED. Messages carry SillyTavern's own send_date format.
// The "backend" is scripted by the test through window.standin.

class EventEmitter {
    constructor() { this.events = {}; }
    on(event, listener) { (this.events[event] ??= []).push(listener); }
    removeListener(event, listener) {
        const list = this.events[event];
        const index = list ? list.indexOf(listener) : -1;
        if (index > -1) list.splice(index, 1);
    }
    async emit(event, ...args) {
        for (const listener of (this.events[event] ?? []).slice()) {
            try { await listener(...args); } catch (err) { console.error(err); }
        }
    }
}

const eventTypes = {
    GENERATION_STARTED: 'generation_started',
    GENERATION_STOPPED: 'generation_stopped',
    GENERATION_ENDED: 'generation_ended',
    STREAM_TOKEN_RECEIVED: 'stream_token_received',
    MESSAGE_SENT: 'message_sent',
    USER_MESSAGE_RENDERED: 'user_message_rendered',
    MESSAGE_RECEIVED: 'message_received',
    CHARACTER_MESSAGE_RENDERED: 'character_message_rendered',
    CHAT_CHANGED: 'chat_id_changed',
};

const eventSource = new EventEmitter();
const chat = [];
const characters = [{ name: 'Aria', avatar: 'Aria.png', chat: 'Aria - 2026-12-02', first_mes: 'Hello, I am Aria.' }];
const characterId = '0';
const extensionSettings = {};
// what SillyTavern would have restored from its settings file
const preset = new URLSearchParams(location.search).get('settings');
if (preset) extensionSettings.newage = JSON.parse(preset);
const files = {}; // chat file name -> saved messages
let generating = null; // { abort: AbortController, streaming }
let isSendPress = false; // SillyTavern's is_send_press

// SillyTavern 1.12's getMessageTimeStamp(): "December 2, 2026 10:28pm"
function getMessageTimeStamp() {
    const months = ['January', 'February', 'March', 'April', 'May', 'June', 'July',
        'August', 'September', 'October', 'November', 'December'];
    const d = new Date();
    let hours = d.getHours();
    const meridiem = hours >= 12 ? 'pm' : 'am';
    hours %= 12;
    if (hours === 0) hours = 12;
    const minutes = String(d.getMinutes()).padStart(2, '0');
    return `${months[d.getMonth()]} ${d.getDate()}, ${d.getFullYear()} ${hours}:${minutes}${meridiem}`;
}

// what SillyTavern's timestampToMoment() can read (utils.js parseTimestamp):
// epoch ms, "June 19, 2023 2:20pm", "2024-7-12@01h31m37s", ISO 8601
function parseTimestamp(timestamp) {
    if (!timestamp) return null;
    if (typeof timestamp === 'number' || /^\d+$/.test(timestamp)) return new Date(Number(timestamp));
    const meridiem = /(\w+)\s(\d{1,2}),\s(\d{4})\s(\d{1,2}):(\d{1,2})(am|pm)/i.exec(timestamp);
    if (meridiem) {
        const [, month, day, year, hour, minute, ampm] = meridiem;
        const monthIndex = new Date(`${month} 1, 2000`).getMonth();
        if (Number.isNaN(monthIndex)) return null;
        const hour24 = (Number(hour) % 12) + (ampm.toLowerCase() === 'pm' ? 12 : 0);
        return new Date(Number(year), monthIndex, Number(day), hour24, Number(minute));
    }
    const humanized = /(\d{4})-(\d{1,2})-(\d{1,2})@(\d{1,2})h(\d{1,2})m(\d{1,2})s/.exec(timestamp);
    if (humanized) {
        const [, y, mo, d, h, mi, se] = humanized.map(Number);
        return new Date(Date.UTC(y, mo - 1, d, h, mi, se));
    }
    if (/^\d{4}-\d{2}-\d{2}T/.test(timestamp)) return new Date(timestamp);
    return null;
}

const standin = {
    backend: { streaming: true, delayMs: 15, fail: false },
    script: {}, // user text -> tokens of the answer
    generations: [], // the user text each generation answered
    overlaps: 0, // generations started while another ran (must stay 0)
    prompts: [], // the chat each generation was given (texts)
    stops: 0,
    saves: 0,
    files,
    reply(text) {
        if (this.script[text]) return this.script[text];
        const out = ['Echo', ': '];
        for (let i = 0; i < text.length; i += 3) out.push(text.slice(i, i + 3));
        return out;
    },
    chatId: () => characters[characterId].chat,
    parseTimestamp,
    isSendPress: () => isSendPress,
    /** The SillyTavern user types and presses Send (ignored while busy). */
    userSend(text) {
        document.getElementById('send_textarea').value = text;
        document.getElementById('send_but').click();
    },
    chatTexts: () => chat.map((m) => `${m.is_user ? 'user' : 'char'}: ${m.mes}`),
};
window.standin = standin;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function render() {
    const box = document.getElementById('chat');
    box.replaceChildren(...chat.map((m, i) => {
        const div = document.createElement('div');
        div.className = 'mes';
        div.dataset.mesid = String(i);
        div.textContent = `${m.name}: ${m.mes}`;
        return div;
    }));
}

function addOneMessage(message) {
    render();
    return message;
}

async function saveChat() {
    standin.saves += 1;
    files[characters[characterId].chat] = structuredClone(chat);
}

async function openCharacterChat(fileName) {
    characters[characterId].chat = fileName;
    chat.length = 0;
    if (files[fileName]) chat.push(...structuredClone(files[fileName]));
    else chat.push({ name: 'Aria', is_user: false, mes: characters[characterId].first_mes });
    render();
    await saveChat();
    await eventSource.emit(eventTypes.CHAT_CHANGED, fileName);
}

function hideStopButton() {
    const stop = document.getElementById('mes_stop');
    if (stop.style.display !== 'none') {
        stop.style.display = 'none';
        eventSource.emit(eventTypes.GENERATION_ENDED, chat.length);
    }
}

function unblock() {
    isSendPress = false;
    hideStopButton();
    generating = null;
}

function lastUserText() {
    for (let i = chat.length - 1; i >= 0; i--) if (chat[i].is_user) return chat[i].mes;
    return '';
}

async function generate(type, { automatic_trigger } = {}) {
    await eventSource.emit(eventTypes.GENERATION_STARTED, type, { automatic_trigger }, false);
    if (generating) standin.overlaps += 1;
    const run = { abort: new AbortController(), streaming: standin.backend.streaming };
    generating = run;
    isSendPress = true;
    const area = document.getElementById('send_textarea');
    const typed = area.value;
    area.value = '';
    await sleep(5); // processCommands, pingServer: the Stop button shows a moment later
    if (typed && !automatic_trigger) {
        chat.push({ name: 'User', is_user: true, is_system: false, send_date: getMessageTimeStamp(), mes: typed, extra: {} });
        await eventSource.emit(eventTypes.MESSAGE_SENT, chat.length - 1);
        render();
    }
    document.getElementById('mes_stop').style.display = 'flex'; // deactivateSendButtons
    standin.prompts.push(chat.map((m) => m.mes));
    const userText = lastUserText();
    standin.generations.push(userText);
    const tokens = standin.reply(userText);
    const { delayMs, fail } = standin.backend;
    if (fail) {
        await sleep(delayMs);
        unblock();
        throw new Error('API Error: the backend refused the request');
    }
    if (run.streaming) {
        const message = { name: 'Aria', is_user: false, mes: '' };
        chat.push(message); // onStartStreaming: the reply is in the chat as it grows
        const id = chat.length - 1;
        let text = '';
        for (const token of tokens) {
            await sleep(delayMs);
            if (run.abort.signal.aborted) break;
            text += token;
            await eventSource.emit(eventTypes.STREAM_TOKEN_RECEIVED, text);
            message.mes = text;
            render();
        }
        if (run.abort.signal.aborted) {
            // onStopStreaming: the partial message stays, nothing is returned
            unblock();
            eventSource.emit(eventTypes.MESSAGE_RECEIVED, id);
            return undefined;
        }
        message.mes = text.trim(); // cleanUpMessage
        render();
        unblock();
        await eventSource.emit(eventTypes.MESSAGE_RECEIVED, id);
        await eventSource.emit(eventTypes.CHARACTER_MESSAGE_RENDERED, id);
        await saveChat();
        return Object.defineProperties(new String(text), { fromStream: { value: true } });
    }
    await sleep(delayMs * tokens.length);
    if (run.abort.signal.aborted) {
        unblock();
        return undefined;
    }
    chat.push({ name: 'Aria', is_user: false, mes: tokens.join('').trim() });
    render();
    unblock();
    await eventSource.emit(eventTypes.MESSAGE_RECEIVED, chat.length - 1);
    await eventSource.emit(eventTypes.CHARACTER_MESSAGE_RENDERED, chat.length - 1);
    await saveChat();
    return undefined;
}

function stopGeneration() {
    let stopped = false;
    if (generating) {
        generating.abort.abort('Clicked stop button');
        hideStopButton();
        stopped = true;
        standin.stops += 1;
    }
    eventSource.emit(eventTypes.GENERATION_STOPPED);
    return stopped;
}

document.getElementById('mes_stop').addEventListener('click', () => stopGeneration());
// sendTextareaMessage(): nothing while a generation runs
document.getElementById('send_but').addEventListener('click', () => {
    if (isSendPress) return;
    generate('normal').catch((err) => console.error(err));
});

globalThis.SillyTavern = {
    getContext: () => ({
        chat,
        characters,
        groups: [],
        name1: 'User',
        name2: characters[characterId].name,
        characterId,
        groupId: null,
        chatId: characters[characterId].chat,
        getCurrentChatId: () => characters[characterId].chat,
        eventSource,
        eventTypes,
        event_types: eventTypes,
        generate,
        stopGeneration,
        addOneMessage,
        saveChat,
        openCharacterChat,
        extensionSettings,
        saveSettingsDebounced: () => {},
    }),
};

await openCharacterChat(characters[characterId].chat);
// SillyTavern loads third-party extensions from this path once it is ready
await import('/scripts/extensions/third-party/newage/index.js');
standin.ready = true;

// A stand-in for SillyTavern's page, for the extension's browser tests (not
// shipped). It mirrors what SillyTavern 1.12 does behind getContext(): an
// EventEmitter whose emit awaits each listener in turn; generate() emits
// GENERATION_STARTED, reads and clears #send_textarea (adding it as the
// user's message unless automatic_trigger), then streams: one
// STREAM_TOKEN_RECEIVED per token with the cumulative text, or answers in one
// piece; GENERATION_ENDED comes before MESSAGE_RECEIVED; stopGeneration()
// aborts, emits GENERATION_STOPPED and generate() resolves with nothing;
// openCharacterChat() switches to (or starts) a chat file of the character.
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

const standin = {
    backend: { streaming: true, delayMs: 15, fail: false },
    script: {}, // user text -> tokens of the answer
    generations: [], // the user text each generation answered
    overlaps: 0, // generations started while another ran (must stay 0)
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

function unblock() {
    document.getElementById('mes_stop').style.display = 'none';
    generating = null;
    eventSource.emit(eventTypes.GENERATION_ENDED, chat.length);
}

function lastUserText() {
    for (let i = chat.length - 1; i >= 0; i--) if (chat[i].is_user) return chat[i].mes;
    return '';
}

async function generate(type, { automatic_trigger } = {}) {
    await eventSource.emit(eventTypes.GENERATION_STARTED, type, { automatic_trigger }, false);
    if (generating) standin.overlaps += 1;
    const area = document.getElementById('send_textarea');
    const typed = area.value;
    area.value = '';
    if (typed && !automatic_trigger) {
        chat.push({ name: 'User', is_user: true, mes: typed });
        render();
    }
    const run = { abort: new AbortController(), streaming: standin.backend.streaming };
    generating = run;
    document.getElementById('mes_stop').style.display = 'flex';
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
        chat.push(message);
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
        stopped = true;
        standin.stops += 1;
    }
    eventSource.emit(eventTypes.GENERATION_STOPPED);
    return stopped;
}

document.getElementById('mes_stop').addEventListener('click', () => stopGeneration());

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

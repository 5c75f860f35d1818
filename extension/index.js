// newage extension for SillyTavern. SPDX-License-Identifier: AGPL-3.0-or-later
// SillyTavern answers LLM requests of a newage server. Uses only the public
// SillyTavern.getContext() surface, so a SillyTavern update cannot break
// loading; see the project's README for installing and docs/protocol.md for
// what goes over the wire.

import { Answerer } from './answer.js';
import { Connection } from './connection.js';
import { Conversations } from './conversations.js';
import { load, save } from './settings.js';

const getContext = () => globalThis.SillyTavern.getContext();

const FIELDS = [
    ['serverUrl', 'Server URL', 'text'],
    ['clientId', 'Client ID', 'text'],
    ['password', 'Password (when the trust entry has one)', 'password'],
];

function element(tag, attrs = {}, children = []) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
        if (name === 'text') node.textContent = value;
        else node.setAttribute(name, value);
    }
    node.append(...children);
    return node;
}

/** The panel in the Extensions drawer, built with the DOM (no template fetch). */
function buildPanel(settings) {
    const inputs = FIELDS.map(([name, label, type]) => element('label', { class: 'newage-field' }, [
        element('span', { text: label }),
        element('input', { id: `newage_${name}`, type, class: 'text_pole', autocomplete: 'off' }),
    ]));
    const conversation = element('select', { id: 'newage_conversation', class: 'text_pole' }, [
        element('option', { value: 'room', text: 'One chat per newage room (current character)' }),
        element('option', { value: 'current', text: 'The chat that is open' }),
    ]);
    const panel = element('div', { id: 'newage_settings', class: 'newage-settings' }, [
        element('div', { class: 'inline-drawer' }, [
            element('div', { class: 'inline-drawer-toggle inline-drawer-header' }, [
                element('b', { text: 'newage' }),
                element('div', { class: 'inline-drawer-icon fa-solid fa-circle-chevron-down down' }),
            ]),
            element('div', { class: 'inline-drawer-content' }, [
                ...inputs,
                element('label', { class: 'newage-field' }, [element('span', { text: 'Answer in' }), conversation]),
                element('label', { class: 'checkbox_label' }, [
                    element('input', { id: 'newage_autoConnect', type: 'checkbox' }),
                    element('span', { text: 'Connect when SillyTavern starts' }),
                ]),
                element('div', { class: 'newage-buttons' }, [
                    element('div', { id: 'newage_connect', class: 'menu_button', text: 'Connect' }),
                    element('div', { id: 'newage_disconnect', class: 'menu_button', text: 'Disconnect' }),
                ]),
                element('div', { id: 'newage_status', class: 'newage-status', role: 'status' }),
                element('div', { id: 'newage_error', class: 'newage-error' }),
            ]),
        ]),
    ]);
    const host = document.getElementById('extensions_settings2')
        ?? document.getElementById('extensions_settings') ?? document.body;
    host.append(panel);
    for (const [name] of FIELDS) panel.querySelector(`#newage_${name}`).value = settings[name] ?? '';
    conversation.value = settings.conversation;
    panel.querySelector('#newage_autoConnect').checked = !!settings.autoConnect;
    return panel;
}

function start() {
    const ctx = getContext();
    const settings = load(ctx);
    const persist = () => save(getContext());
    const panel = buildPanel(settings);
    let connection;
    let answerer;

    const render = () => {
        if (!connection || !answerer) return;
        const parts = [
            connection.state,
            `key: ${settings.key ? 'yes' : 'no'}`,
            `requests served: ${answerer.served}`,
            `queue: ${answerer.pending}`,
        ];
        const status = panel.querySelector('#newage_status');
        status.textContent = parts.join(' · ');
        status.dataset.state = connection.state;
        panel.querySelector('#newage_error').textContent = connection.lastError
            ? `Last error: ${connection.lastError}` : '';
    };

    connection = new Connection(settings, {
        onRequest: (data) => answerer.enqueue(data),
        onCancel: (data) => answerer.cancel(data),
        onChange: render,
        saveKey: persist,
        onLost: () => answerer.drop(),
    });
    const send = (event, payload) => connection.send(event, payload);
    answerer = new Answerer(getContext, send, new Conversations(getContext, settings), render);

    for (const [name] of FIELDS) {
        panel.querySelector(`#newage_${name}`).addEventListener('change', (event) => {
            settings[name] = event.target.value.trim();
            if (name !== 'password') settings.key = null; // another server or client: log in afresh
            persist();
        });
    }
    panel.querySelector('#newage_conversation').addEventListener('change', (event) => {
        settings.conversation = event.target.value;
        persist();
    });
    panel.querySelector('#newage_autoConnect').addEventListener('change', (event) => {
        settings.autoConnect = event.target.checked;
        persist();
    });
    panel.querySelector('#newage_connect').addEventListener('click', () => connection.start());
    panel.querySelector('#newage_disconnect').addEventListener('click', () => connection.stop());

    render();
    if (settings.autoConnect) connection.start();
    globalThis.newage = { connection, answerer, settings }; // for the console
}

// SillyTavern loads extension modules after its own start-up; the page
// may still be settling, so wait for the DOM like SillyTavern's own do.
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();

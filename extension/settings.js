// newage extension for SillyTavern. SPDX-License-Identifier: AGPL-3.0-or-later
// The extension's settings, kept in SillyTavern's extension settings.

export const NAME = 'newage';

/** What a fresh data directory of newage trusts, next to `make run`. */
export function defaults() {
    const port = location.port || (location.protocol === 'https:' ? '443' : '80');
    return {
        serverUrl: 'http://127.0.0.1:4000',
        clientId: `SillyTavern-${port}`,
        password: '',
        autoConnect: true,
        conversation: 'room', // 'room': one chat per newage room; 'current': the open chat
        key: null, // issued by the server, shown nowhere
    };
}

/** The live settings object (created with the defaults on first use). */
export function load(ctx) {
    const all = ctx.extensionSettings;
    const mine = all[NAME] ?? {};
    all[NAME] = Object.assign(defaults(), mine);
    return all[NAME];
}

export function save(ctx) {
    ctx.saveSettingsDebounced();
}

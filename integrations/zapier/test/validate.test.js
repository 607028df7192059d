/* globals describe, it, expect */
'use strict';

// The offline half of `zapier-platform validate --without-style`: the CLI runs the app's own
// `validate` command (zapier-platform-core, against zapier-platform-schema). The CLI itself needs
// Node 22 (Zapier's runtime); this runs the same command on any Node the app supports.

const zapier = require('zapier-platform-core');

const App = require('../index');

const validationErrors = async () => {
  const handler = zapier.createAppHandler(App);
  const response = await handler({ command: 'validate', calledFromCli: true }, {});
  return response.results;
};

describe('the app definition', () => {
  it('passes the platform schema validation', async () => {
    expect(await validationErrors()).toEqual([]);
  });

  it('labels every visible input and output field', () => {
    const operations = [
      ...Object.values(App.creates),
      ...Object.values(App.searches),
      ...Object.values(App.triggers).filter((t) => !t.display.hidden),
    ];
    for (const op of operations) {
      for (const field of [...(op.operation.inputFields || []), ...(op.operation.outputFields || [])]) {
        expect({ op: op.key, field: field.key, label: field.label || null }).toEqual(
          expect.objectContaining({ label: expect.any(String) }),
        );
      }
    }
  });
});

// Ask a running Newsdesk app a question and print the answer JSON (the same as `python -m rag ask --json`).
//   npm install && node ask.mjs "Why did Amazon close its Shanghai lab?" [http://127.0.0.1:7860/]
// With a login (app started with --auth user:pass), set NEWSDESK_AUTH=user:pass.
import { Client } from "@gradio/client";

const question = process.argv[2] ?? "Why did Amazon close its Shanghai lab?";
const url = process.argv[3] ?? process.env.NEWSDESK_URL ?? "http://127.0.0.1:7860/";
const auth = process.env.NEWSDESK_AUTH ? process.env.NEWSDESK_AUTH.split(":", 2) : undefined;

const client = await Client.connect(url, auth ? { auth } : {});
const result = await client.predict("/ask", { question, history: null, filters: null });
const answer = result.data[0];
console.log(JSON.stringify(answer));
process.exit(0);

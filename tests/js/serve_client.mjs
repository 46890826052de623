// The npm `openai` client against `attest serve`: one plain completion and one streamed, as an app would make them.
//   env: ATTEST_URL (the server's base URL), ATTEST_KEY (an API key), QUESTION
//   stdout: JSON {"answer", "attestation", "record_header", "streamed", "stream_attestation"}
import OpenAI from 'openai'

const client = new OpenAI({ baseURL: `${process.env.ATTEST_URL}/v1`, apiKey: process.env.ATTEST_KEY, maxRetries: 0 })
const messages = [{ role: 'user', content: process.env.QUESTION }]

const { data: reply, response } = await client.chat.completions.create({ model: 'extractive', messages }).withResponse()
let streamed = ''
let last = null
for await (const chunk of await client.chat.completions.create({ model: 'extractive', messages, stream: true })) {
  streamed += chunk.choices[0]?.delta?.content ?? ''
  last = chunk
}
process.stdout.write(JSON.stringify({
  answer: reply.choices[0].message.content,
  attestation: reply.attestation,
  record_header: response.headers.get('x-attest-record'),
  streamed,
  stream_attestation: last.attestation
}))

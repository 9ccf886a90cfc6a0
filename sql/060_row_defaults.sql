-- The streamer's COPY binary leaves out the two columns that are the same for every row of a file
-- (a third of its bytes): the server takes them from settings of the loading transaction. A row
-- inserted otherwise must still name its file and batch; without the settings this fails.
ALTER TABLE user_activity
  ALTER COLUMN source_file SET DEFAULT current_setting('dropstream.source_file'),
  ALTER COLUMN batch_id SET DEFAULT current_setting('dropstream.batch_id')::bigint;

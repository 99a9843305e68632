/** A step's fields as a form generated from its component function's JSON schema. */
import Form from '@rjsf/core';
import validator from '@rjsf/validator-ajv8';
import { useMemo } from 'react';
import { cleanFields, formSchemaFor, uiSchemaFor } from './form';

export interface NodeFormProps {
  /** The function's `fields` schema, as `GET /api/v1/components` gives it. */
  schema: Record<string, unknown>;
  value: Record<string, unknown>;
  onChange: (fields: Record<string, unknown>) => void;
  /** Prefix of the inputs' ids (one form per step). */
  idPrefix: string;
  readonly?: boolean;
}

export function NodeForm({ schema, value, onChange, idPrefix, readonly }: NodeFormProps) {
  const formSchema = useMemo(() => formSchemaFor(schema), [schema]);
  const uiSchema = useMemo(() => uiSchemaFor(schema), [schema]);
  return (
    <Form
      schema={formSchema}
      uiSchema={uiSchema}
      formData={value}
      validator={validator}
      idPrefix={idPrefix}
      liveValidate="onChange"
      showErrorList={false}
      noHtml5Validate
      readonly={readonly ?? false}
      onChange={(e) => onChange(cleanFields(e.formData as Record<string, unknown> | undefined))}
    />
  );
}
